"""Small helpers shared by the Nomad double: IDs, Go durations, RFC 3339 times and the virtual clock."""

from __future__ import annotations

import random
import re
import threading
import time
from datetime import datetime, timezone

ZERO_TIME = "0001-01-01T00:00:00Z"
NS = 1_000_000_000

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}


def parse_go_duration(text: str) -> int:
    """Parse a Go duration string (``30s``, ``1h5m``, ``1.5s``) into nanoseconds; ValueError when invalid."""
    text = text.strip()
    if text in ("0", ""):
        return 0
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_RE.match(body, pos)
        if not match:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * round(total)


def format_go_duration(ns: int) -> str:
    """Format nanoseconds the way Go's ``time.Duration.String`` does for whole seconds (``24h0m0s``)."""
    if ns == 0:
        return "0s"
    if ns % NS:
        return f"{ns / NS:g}s"
    seconds = ns // NS
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def duration_ns(value: object) -> int:
    """A duration given as int nanoseconds or a Go duration string, as int nanoseconds."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError("duration must be a number of nanoseconds")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        return parse_go_duration(value)
    raise ValueError(f"invalid duration {value!r}")


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as an RFC 3339 UTC string with nanoseconds (Go's time.Time JSON); 0 → zero time."""
    if not ns:
        return ZERO_TIME
    seconds, frac = divmod(ns, NS)
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


class Ids:
    """Deterministic UUIDs and hex strings from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def hex(self, length: int) -> str:
        """``length`` random lowercase hex digits."""
        with self._lock:
            return "".join(self._rng.choice("0123456789abcdef") for _ in range(length))

    def uuid(self) -> str:
        """A Nomad-style UUID (8-4-4-4-12 hex)."""
        raw = self.hex(32)
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


class Clock:
    """Virtual time in nanoseconds: frozen at ``start`` (or real time plus an offset) and moved by ``advance``."""

    def __init__(self, start: float | None = None, real: bool = False) -> None:
        self.real = real
        self._origin_ns = int((time.time() if start is None else start) * NS)
        self._offset_ns = 0
        self._tick = 0

    def now_ns(self) -> int:
        """The current time; a frozen clock still moves 1 µs per call so that events stay ordered."""
        if self.real:
            return time.time_ns() + self._offset_ns
        self._tick += 1_000
        return self._origin_ns + self._offset_ns + self._tick

    def peek_ns(self) -> int:
        """The current time without ticking."""
        if self.real:
            return time.time_ns() + self._offset_ns
        return self._origin_ns + self._offset_ns + self._tick

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._offset_ns += int(seconds * NS)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def snappy_encode(data: bytes) -> bytes:
    """Snappy block format using literals only (valid snappy; Nomad stores dispatch payloads snappy-encoded)."""
    out = bytearray(_uvarint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start:start + 65536]
        size = len(chunk) - 1
        if size < 60:
            out.append(size << 2)
        elif size < 256:
            out += bytes([60 << 2, size])
        else:
            out += bytes([61 << 2]) + size.to_bytes(2, "little")
        out += chunk
    return bytes(out)


def snappy_decode(data: bytes) -> bytes:
    """Decode a snappy block (literals and copies), e.g. a dispatched job's ``Payload``."""
    pos, length, shift = 0, 0, 0
    while True:
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            size = tag >> 2
            if size >= 60:
                nbytes = size - 59
                size = int.from_bytes(data[pos:pos + nbytes], "little")
                pos += nbytes
            size += 1
            out += data[pos:pos + size]
            pos += size
            continue
        if kind == 1:
            size = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            size = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            size = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        for _ in range(size):
            out.append(out[-offset])
    if len(out) != length:
        raise ValueError("snappy: corrupt input")
    return bytes(out)
