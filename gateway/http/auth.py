"""Bearer-key authentication, compared in constant time."""

from __future__ import annotations

import hmac

from flask import request

from gateway.http.problems import ProblemError

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class KeyChecker:
    """Checks ``Authorization: Bearer <key>`` against the configured keys; no keys means no check."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    @property
    def enabled(self) -> bool:
        """Whether any key is configured."""
        return bool(self._keys)

    def check(self) -> None:
        """Raise a 401 problem unless the current request carries a valid key."""
        if not self._keys or request.path in OPEN_PATHS:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ProblemError(
                401,
                "missing bearer key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="taskapi"'},
            )
        candidate = token.strip().encode()
        # Compare with every key so the time taken does not tell which key came close.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise ProblemError(401, "invalid bearer key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
