"""The exact job JSON built for each example API with a container driver (and a spec using every mapping).

Regenerate after an intended change with ``TASKAPI_REGEN_GOLDEN=1 python -m pytest tests/nomad/test_golden.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.nomad.jobs import build_job, cpu_mhz, memory_mb
from gateway.spec import TaskAPISpec, parse_specs, validate_spec
from tests.nomad.conftest import NomadGateway
from tests.nomad_double import NomadDouble

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
STAMP = "2026-01-01T00:00:00.000Z"
REGEN = os.environ.get("TASKAPI_REGEN_GOLDEN") == "1"

# Not an example: GPUs, several node groups, shm, env, exponential retry, the default driver, two containers.
EVERYTHING = {
    "name": "train",
    "kind": "TaskAPI",
    "node_groups": ["gpu-spot", "cpu-spot"],
    "retry": {"attempts": 2, "delay": "10s", "delay_function": "exponential", "max_delay": "1m"},
    "timeout": 7200,
    "kill_timeout": "45s",
    "pod": {
        "containers": [
            {
                "name": "trainer",
                "image": "ghcr.io/example/trainer:1.2",
                "command": ["python", "-m", "train"],
                "args": ["--epochs", "3"],
                "env": {"WANDB_MODE": "offline"},
                "compute": {"cpu": "3.5", "gpu": 1, "mem": "15Gi", "shm": "1Gi"},
            },
            {"name": "uploader", "image": "ghcr.io/example/uploader:1", "command": ["upload", "--watch"]},
        ]
    },
}


def golden_specs() -> list[TaskAPISpec]:
    specs = [validate_spec(EVERYTHING)]
    for path in sorted((REPO / "examples").glob("*")):
        if path.suffix in (".yaml", ".yml", ".json"):
            specs += [s for s in parse_specs(path.read_text()) if s.driver in ("docker", "podman")]
    return specs


SPECS = golden_specs()


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_job_json_matches_golden(spec: TaskAPISpec) -> None:
    job = build_job(spec, "default", STAMP, STAMP)
    path = GOLDEN / f"{spec.name}.json"
    text = json.dumps(job, indent=2, sort_keys=True) + "\n"
    if REGEN:
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with TASKAPI_REGEN_GOLDEN=1"
    assert json.loads(path.read_text()) == job


def test_the_examples_with_containers_have_goldens() -> None:
    assert {"show-job", "with-sidecar", "train"} <= {s.name for s in SPECS}
    assert {p.stem for p in GOLDEN.glob("*.json")} == {s.name for s in SPECS}


def test_unit_conversions() -> None:
    assert cpu_mhz(200) == 200 and cpu_mhz(3500) == 3500 and cpu_mhz(0) == 1
    assert memory_mb(64 * 2**20) == 64 and memory_mb(10**9) == 954


def _subset(expected: Any, actual: Any, path: str = "") -> None:
    if isinstance(expected, dict):
        for key, value in expected.items():
            assert isinstance(actual, dict) and key in actual, f"{path}.{key} missing"
            _subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _subset(e, a, f"{path}[{i}]")
    else:
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"


def test_deploy_registers_the_golden_job(gw: NomadGateway) -> None:
    info = gw.deploy(EVERYTHING)
    stored = gw.nomad.job("taskapi-train")
    golden = json.loads((GOLDEN / "train.json").read_text())
    for key in ("taskapi_created_at", "taskapi_updated_at"):
        golden["Meta"][key] = info["created_at" if key.endswith("created_at") else "updated_at"]
    _subset(golden, stored)
    assert stored["ParameterizedJob"]["MetaRequired"] == ["task_id", "submitted_at", "timeout"]


def test_older_nomad_drops_max_run_duration(make_nomad_gateway: Callable[..., NomadGateway]) -> None:
    with NomadDouble(version="1.11.0") as old:
        old.add_node("cpu-1", pool="cpu-spot", node_class="cpu-spot")
        gw = make_nomad_gateway(old, workers=1)
        gw.deploy(EVERYTHING)
        assert "MaxRunDuration" not in old.job("taskapi-train")["TaskGroups"][0]
        task_id = gw.submit("train")
        assert gw.task("train", task_id)["status"] == "pending"
