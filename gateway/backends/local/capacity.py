"""What the local host offers to tasks: CPU millicores, memory bytes and GPUs."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from gateway.config import Settings
from gateway.spec import TaskAPISpec
from gateway.units import parse_memory


@dataclass(frozen=True)
class Resources:
    """An amount of CPU, memory and GPUs."""

    millicores: int = 0
    memory: int = 0
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.millicores + other.millicores, self.memory + other.memory, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.millicores - other.millicores, self.memory - other.memory, self.gpus - other.gpus)

    def fits_in(self, free: Resources) -> bool:
        """Whether this amount fits within ``free``."""
        return self.millicores <= free.millicores and self.memory <= free.memory and self.gpus <= free.gpus

    def describe(self) -> str:
        """A short human form, e.g. ``2000m CPU, 512Mi memory, 1 GPU``."""
        parts = [f"{self.millicores}m CPU"]
        if self.memory:
            parts.append(f"{self.memory // (1024 * 1024)}Mi memory")
        if self.gpus:
            parts.append(f"{self.gpus} GPU")
        return ", ".join(parts)


def host_cpus() -> float:
    """CPUs this process may run on."""
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


def host_memory() -> int:
    """MemTotal from /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


def host_gpus() -> int:
    """GPUs listed by ``nvidia-smi -L``; 0 without nvidia-smi."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def total_capacity(settings: Settings) -> Resources:
    """What tasks may use in all: the settings where given, else the whole host."""
    cpus = settings.cpus if settings.cpus is not None else host_cpus()
    memory = parse_memory(settings.memory) if settings.memory is not None else host_memory()
    gpus = settings.gpus if settings.gpus is not None else host_gpus()
    return Resources(round(cpus * 1000), memory, gpus)


def task_needs(spec: TaskAPISpec) -> Resources:
    """What one task of ``spec`` reserves: the sum over its containers (no memory limit reserves 0)."""
    total = Resources()
    for container in spec.pod.containers:
        compute = container.compute
        total = total + Resources(compute.millicores, compute.memory_bytes or 0, compute.gpu)
    return total
