"""Backends behind the gateway's one port (``base.Backend``)."""
