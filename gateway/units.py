"""Parsing of the quantities that specs use: durations, CPU, memory."""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"([0-9]+(?:[.][0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MEMORY_UNITS = {
    "": 1,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
_MEMORY = re.compile(r"^([0-9]+(?:[.][0-9]+)?)(" + "|".join(u for u in _MEMORY_UNITS if u) + r")?$")
_CPU = re.compile(r"^([0-9]+(?:[.][0-9]+)?)(m)?$")


def parse_duration(value: str | int | float) -> float:
    """Seconds in a Go-style duration (``90s``, ``1m30s``, ``1h``) or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string such as '30s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"{value!r} is not a duration: durations cannot be negative")
        if re.fullmatch(r"[0-9]+([.][0-9]+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{value!r} is not a duration such as '30s', '5m' or '1h30m'")
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds, not negative")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form of a number of seconds (``10s``, ``2m5s``, ``1h``)."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f}s".replace(".0s", "s") if seconds < 10 else f"{whole}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return out


def parse_cpu(value: str | int | float) -> int:
    """Millicores in a Kubernetes CPU quantity (``200m``, ``1``, ``0.5``)."""
    if isinstance(value, bool):
        raise ValueError("cpu must be a quantity such as '200m' or 1")
    match = _CPU.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a CPU quantity such as '200m', '1' or '0.5'")
    number, milli = float(match.group(1)), match.group(2)
    millicores = round(number if milli else number * 1000)
    if millicores <= 0:
        raise ValueError("cpu must be more than zero")
    return millicores


def parse_memory(value: str | int) -> int:
    """Bytes in a Kubernetes memory quantity (``512Mi``, ``1Gi``, ``1G``, ``1048576``)."""
    if isinstance(value, bool):
        raise ValueError("memory must be a quantity such as '512Mi'")
    match = _MEMORY.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a memory quantity such as '512Mi' or '1Gi'")
    amount = round(float(match.group(1)) * _MEMORY_UNITS[match.group(2) or ""])
    if amount <= 0:
        raise ValueError("memory must be more than zero")
    return amount
