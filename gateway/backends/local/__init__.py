"""The embedded local backend: SQLite state, one runner process, a shim per attempt."""
