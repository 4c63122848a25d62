"""Every spec in examples/ validates, and the process examples do what their comments say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.spec import TaskAPISpec, parse_specs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPEC_FILES = sorted(p for p in EXAMPLES.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml", ".json"))


def _specs(name: str) -> list[TaskAPISpec]:
    return parse_specs((EXAMPLES / name).read_text(encoding="utf-8"))


def _one(name: str) -> TaskAPISpec:
    specs = _specs(name)
    assert len(specs) == 1
    return specs[0]


def _run(spec: TaskAPISpec, tmp_path: Path, config: dict, attempt: int = 1) -> subprocess.CompletedProcess[str]:
    """Run the leading container's argv on the host as the process driver would, with a job file."""
    job = {
        "job_id": "69b377c15a1314be",
        "api_name": spec.name,
        "kind": "TaskAPI",
        "workers": 1,
        "config": config,
        "timeout": spec.timeout,
        "start_time": "2026-01-01T00:00:00Z",
    }
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job), encoding="utf-8")
    container = spec.pod.containers[0]
    argv = [sys.executable if a == "python3" else a for a in container.argv]
    env = {
        **os.environ,
        **container.env,
        "TASKAPI_JOB_ID": job["job_id"],
        "TASKAPI_API_NAME": spec.name,
        "TASKAPI_ATTEMPT": str(attempt),
        "TASKAPI_JOB_FILE": str(job_file),
        "TMPDIR": str(tmp_path),
    }
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


def test_there_are_examples() -> None:
    names = {p.name for p in SPEC_FILES}
    assert {"hello.yaml", "config.yaml", "flaky.yaml", "container.yaml", "all.yaml"} <= names


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    specs = parse_specs(path.read_text(encoding="utf-8"))
    assert specs
    for spec in specs:
        assert spec.kind == "TaskAPI"
        # The normalised document validates again (what the gateway stores and shows).
        assert parse_specs(json.dumps(spec.to_document())) == [spec]


def test_example_names_and_endpoints_are_unique_across_files() -> None:
    """All examples can be deployed side by side."""
    names: list[str] = []
    endpoints: list[str] = []
    for path in SPEC_FILES:
        for spec in parse_specs(path.read_text(encoding="utf-8")):
            names.append(spec.name)
            endpoints.append(spec.endpoint)
    assert len(names) == len(set(names)), names
    assert len(endpoints) == len(set(endpoints)), endpoints


def test_readme_mentions_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in SPEC_FILES:
        assert f"`{path.name}`" in readme, path.name


def test_hello(tmp_path: Path) -> None:
    spec = _one("hello.yaml")
    assert spec.name == "hello"
    assert spec.driver == "process"
    result = _run(spec, tmp_path, {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello, world"


def test_config_reads_job_file_and_writes_result(tmp_path: Path) -> None:
    spec = _one("config.yaml")
    assert spec.driver == "process"
    output = tmp_path / "out.json"
    result = _run(spec, tmp_path, {"numbers": [1, 2, 3.5], "output": str(output)}, attempt=2)
    assert result.returncode == 0, result.stderr
    expected = {"job_id": "69b377c15a1314be", "attempt": 2, "sum": 6.5}
    assert json.loads(result.stdout) == expected
    assert json.loads(output.read_text(encoding="utf-8")) == expected


def test_config_default_output_and_bad_config(tmp_path: Path) -> None:
    spec = _one("config.yaml")
    result = _run(spec, tmp_path, {"numbers": [4]})
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "taskapi-sum-69b377c15a1314be.json").read_text(encoding="utf-8"))["sum"] == 4
    bad = _run(spec, tmp_path, {"numbers": ["x"]})
    assert bad.returncode == 1
    assert "config.numbers must be a list of numbers" in bad.stderr


def test_flaky_fails_twice_then_succeeds(tmp_path: Path) -> None:
    spec = _one("flaky.yaml")
    assert spec.retry.attempts == 2
    codes = [_run(spec, tmp_path, {}, attempt=n).returncode for n in (1, 2, 3)]
    assert codes == [1, 1, 0]


def test_container_example() -> None:
    spec = _one("container.yaml")
    assert spec.driver == "podman"
    container = spec.pod.containers[0]
    assert container.image == "localhost/taskapi-test:latest"
    assert container.argv == ["cat", "/cortex/spec/job.json"]


def test_all_lists_several_apis(tmp_path: Path) -> None:
    specs = {s.name: s for s in _specs("all.yaml")}
    assert len(specs) >= 3
    assert specs["word-count"].endpoint == "count"
    sidecar = specs["with-sidecar"]
    assert len(sidecar.pod.containers) == 2
    assert sidecar.driver == "podman"  # the process driver runs one container per task
    greet = _run(specs["greet"], tmp_path, {})
    assert greet.returncode == 0, greet.stderr
    assert greet.stdout.strip() == "hello from greet"
    count = _run(specs["word-count"], tmp_path, {"text": "a b  c"})
    assert count.returncode == 0, count.stderr
    assert json.loads(count.stdout) == {"words": 3}
