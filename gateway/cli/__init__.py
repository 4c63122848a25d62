"""The ``taskapi`` command line: the gateway's server commands and a client of its HTTP contract."""
