"""The Nomad client pools of a cluster: the ONE definition, shared with Terraform.

The pools live in ``terraform/pools.json``; ``gateway/pools.json`` links to it, so the installed package (and
a gateway image built from it) carries the same file. Terraform reads that file with ``jsondecode(file(...))`` to
create one Auto Scaling group per pool (and to render each client's ``node_pool`` / ``node_class`` /
``meta``); this module reads the same file, so a spec's ``node_groups`` entry (a pool name) maps onto the
Nomad node pool and node class the nodes of that pool really register with. Nothing else spells the names.

``TASKAPI_POOLS_FILE`` points at another copy of the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

POOLS_FILE_ENV = "TASKAPI_POOLS_FILE"
DEFAULT_POOLS_FILE = Path(__file__).resolve().parent / "pools.json"


@dataclass(frozen=True)
class Pool:
    """One pool of Nomad clients (one Auto Scaling group)."""

    name: str
    node_pool: str
    node_class: str
    purpose: str
    capacity: str  # "spot" | "on-demand"
    gpu: bool
    runs_tasks: bool
    serves_gateway: bool
    min_size: int
    max_size: int
    instance_types: tuple[str, ...]

    @property
    def spot(self) -> bool:
        """Whether the pool's instances are spot instances (and may be interrupted)."""
        return self.capacity == "spot"

    @property
    def scales_to_zero(self) -> bool:
        """Whether the pool may have no node at all (tasks then wait for capacity)."""
        return self.min_size == 0


@dataclass(frozen=True)
class PoolCatalog:
    """Every pool, plus the pools tasks go to when a spec names none."""

    pools: tuple[Pool, ...]
    default_task_pool: str
    default_gpu_pool: str

    def names(self) -> list[str]:
        """The pool names, in the file's order."""
        return [pool.name for pool in self.pools]

    def get(self, name: str) -> Pool:
        """The pool called ``name``; ``KeyError`` names the known pools."""
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(f"unknown node group {name!r}: the cluster's pools are {', '.join(self.names())}")

    def task_pools(self) -> list[Pool]:
        """The pools that run user tasks (the platform pool does not)."""
        return [pool for pool in self.pools if pool.runs_tasks]

    def default_for(self, gpu: bool) -> Pool:
        """Where a task goes when its spec has no ``node_groups``."""
        return self.get(self.default_gpu_pool if gpu else self.default_task_pool)


def pools_file() -> Path:
    """The pools file in use: ``$TASKAPI_POOLS_FILE`` or the repository's ``terraform/pools.json``."""
    override = os.environ.get(POOLS_FILE_ENV)
    return Path(override) if override else DEFAULT_POOLS_FILE


def _pool(raw: dict[str, Any]) -> Pool:
    return Pool(
        name=str(raw["name"]),
        node_pool=str(raw["node_pool"]),
        node_class=str(raw["node_class"]),
        purpose=str(raw.get("purpose", "")),
        capacity=str(raw["capacity"]),
        gpu=bool(raw["gpu"]),
        runs_tasks=bool(raw["runs_tasks"]),
        serves_gateway=bool(raw.get("serves_gateway", False)),
        min_size=int(raw["min_size"]),
        max_size=int(raw["max_size"]),
        instance_types=tuple(str(t) for t in raw["instance_types"]),
    )


def parse_catalog(document: dict[str, Any]) -> PoolCatalog:
    """Build and check a catalog from the decoded pools file."""
    pools = tuple(_pool(raw) for raw in document["pools"])
    names = [pool.name for pool in pools]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate pool names in the pools file: {names}")
    for pool in pools:
        if pool.capacity not in ("spot", "on-demand"):
            raise ValueError(f"pool {pool.name!r}: capacity must be 'spot' or 'on-demand', not {pool.capacity!r}")
    catalog = PoolCatalog(
        pools=pools,
        default_task_pool=str(document["default_task_pool"]),
        default_gpu_pool=str(document["default_gpu_pool"]),
    )
    catalog.get(catalog.default_task_pool)
    if not catalog.get(catalog.default_gpu_pool).gpu:
        raise ValueError(f"default_gpu_pool {catalog.default_gpu_pool!r} is not a GPU pool")
    return catalog


@cache
def load_catalog(path: Path | None = None) -> PoolCatalog:
    """The catalog from ``path`` (default: :func:`pools_file`), read once."""
    source = path or pools_file()
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"the pools file {source} is missing: set {POOLS_FILE_ENV} to its path") from exc
    return parse_catalog(document)


def pool_names() -> list[str]:
    """The names a spec's ``node_groups`` may use."""
    return load_catalog().names()


def node_pool_for(node_group: str) -> str:
    """The Nomad ``node_pool`` the nodes of ``node_group`` register with."""
    return load_catalog().get(node_group).node_pool


def node_class_for(node_group: str) -> str:
    """The Nomad ``node_class`` of the nodes of ``node_group``."""
    return load_catalog().get(node_group).node_class
