"""The HTTP layer: a Flask app (flask-openapi3) over the backend port."""
