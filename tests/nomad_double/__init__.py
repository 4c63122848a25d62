"""A deterministic HTTP double of the HashiCorp Nomad API for tests (see ``server.NomadDouble``)."""

from .bexpr import compile_filter
from .server import NomadDouble, NomadError
from .util import snappy_decode

__all__ = ["NomadDouble", "NomadError", "compile_filter", "snappy_decode"]
