"""The WSGI entry point gunicorn loads in each worker; settings come from ``TASKAPI_*``."""

from gateway.backends.factory import make_backend
from gateway.config import Settings
from gateway.http.app import create_app

settings = Settings()
app = create_app(settings, make_backend(settings))
