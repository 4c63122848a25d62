"""The runner's wake-up channel: a UNIX datagram socket in the state directory.

Gateway workers and shims send one byte after a change; the runner wakes at once instead of polling.
Sending never blocks and never fails loudly: a runner that is down rescans the database when it starts.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

SOCKET_NAME = "runner.sock"


class Waker:
    """Sends wake-up datagrams to the runner (one socket per thread, reopened after a fork)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = str(state_dir / SOCKET_NAME)
        self._local = threading.local()

    def _socket(self) -> socket.socket:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            local.sock, local.pid = sock, os.getpid()
        return local.sock

    def wake(self) -> None:
        """Nudge the runner; errors (runner down, its queue full) are ignored on purpose."""
        try:
            self._socket().sendto(b"!", self.path)
        except OSError:
            pass


def wake_once(state_dir: Path) -> None:
    """Nudge the runner from a process that sends a single wake-up (a shim that just ended)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(b"!", str(state_dir / SOCKET_NAME))
        except OSError:
            pass


class Listener:
    """The runner's end: a bound datagram socket whose readiness means 'something changed'."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / SOCKET_NAME
        # Only the lock holder gets here, so a leftover socket file is from a dead runner.
        path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)

    def fileno(self) -> int:
        """The socket's descriptor, for selectors."""
        return self.sock.fileno()

    def drain(self) -> None:
        """Discard every queued wake-up: one rescan serves them all."""
        while True:
            try:
                self.sock.recv(64)
            except BlockingIOError:
                return

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
