"""Task API on Nomad: run containers on demand over HTTP."""

__version__ = "0.1.0"
