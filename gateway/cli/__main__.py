"""Allows ``python -m gateway.cli``, the same as the ``taskapi`` console script."""

from gateway.cli.main import main

main()
