"""Choosing the backend named by the settings."""

from __future__ import annotations

from gateway.backends.base import Backend
from gateway.config import Settings


def make_backend(settings: Settings) -> Backend:
    """The backend for ``settings.backend``, imported only when chosen."""
    if settings.backend == "nomad":
        from gateway.backends.nomad.backend import NomadBackend

        return NomadBackend(settings)
    from gateway.backends.local.backend import LocalBackend

    return LocalBackend(settings)
