"""Offline checks of terraform/ that need no AWS: formatting, validation, the single pools definition."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hcl2
import pytest

from gateway import pools as gateway_pools
from tests.terraform import tftools
from tests.terraform.conftest import Terraform

EXAMPLES = sorted(p for p in (tftools.TERRAFORM_DIR / "examples").glob("*") if p.is_dir())


def test_fmt_is_clean(terraform: Terraform) -> None:
    result = terraform.run(tftools.TERRAFORM_DIR, "fmt", "-check", "-recursive", "-diff", "-no-color", check=False)
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def test_root_module_validates(terraform: Terraform, tf_root: Path) -> None:
    terraform.run(tf_root, "validate", "-no-color")


def test_there_is_an_example() -> None:
    assert EXAMPLES, "terraform/examples/ has no example"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(terraform: Terraform, tf_copy: Path, example: Path) -> None:
    workdir = tf_copy / "examples" / example.name
    shutil.rmtree(workdir / ".terraform", ignore_errors=True)
    terraform.init(workdir)
    terraform.run(workdir, "validate", "-no-color")


def _declared_variables() -> set[str]:
    with (tftools.TERRAFORM_DIR / "variables.tf").open() as handle:
        document = hcl2.load(handle)
    return {name.strip('"') for block in document["variable"] for name in block if not name.startswith("__")}


def test_tfvars_example_sets_only_declared_variables() -> None:
    text = (tftools.TERRAFORM_DIR / "terraform.tfvars.example").read_text()
    assigned = hcl2.loads(text)
    unknown = {k for k in assigned if not k.startswith("__")} - _declared_variables()
    assert not unknown, f"terraform.tfvars.example sets undeclared variables: {unknown}"


def test_every_variable_is_described() -> None:
    for path in tftools.TERRAFORM_DIR.rglob("variables.tf"):
        if ".terraform" in path.parts:
            continue
        with path.open() as handle:
            for block in hcl2.load(handle).get("variable", []):
                for name, body in block.items():
                    if name.startswith("__"):
                        continue
                    assert body.get("description"), f"{path}: variable {name} has no description"


# --- the pools: one definition, shared by Terraform and the gateway ---------------------------------------

POOLS_JSON = tftools.TERRAFORM_DIR / "pools.json"


def test_gateway_reads_the_same_pools_file_as_terraform() -> None:
    assert gateway_pools.DEFAULT_POOLS_FILE.resolve() == POOLS_JSON.resolve()  # gateway/pools.json links to it
    main_tf = (tftools.TERRAFORM_DIR / "main.tf").read_text()
    assert 'jsondecode(file("${path.module}/pools.json"))' in main_tf
    document = json.loads(POOLS_JSON.read_text())
    catalog = gateway_pools.load_catalog(POOLS_JSON)
    assert catalog.names() == [p["name"] for p in document["pools"]] == ["platform", "cpu-spot", "gpu-spot"]
    assert {p.name: (p.node_pool, p.node_class) for p in catalog.pools} == {
        p["name"]: (p["node_pool"], p["node_class"]) for p in document["pools"]
    }
    assert gateway_pools.node_pool_for("gpu-spot") == "gpu-spot"
    assert catalog.default_for(gpu=True).name == "gpu-spot"
    assert catalog.default_for(gpu=False).name == "cpu-spot"
    assert [p.name for p in catalog.task_pools()] == ["cpu-spot", "gpu-spot"]


def test_pool_names_are_spelled_nowhere_else_in_terraform() -> None:
    """The pool names appear in pools.json only (examples and docs may mention them)."""
    offenders = []
    for path in tftools.TERRAFORM_DIR.rglob("*"):
        if path.suffix not in (".tf", ".tftpl") or "examples" in path.parts or ".terraform" in path.parts:
            continue
        text = path.read_text()
        offenders += [f"{path.name}: {name}" for name in ("cpu-spot", "gpu-spot") if f'"{name}"' in text]
    assert not offenders, f"pool names hard-coded outside pools.json: {offenders}"


def test_pools_file_shape() -> None:
    catalog = gateway_pools.load_catalog(POOLS_JSON)
    platform = catalog.get("platform")
    assert not platform.spot and platform.min_size >= 1 and platform.serves_gateway and not platform.runs_tasks
    for name in ("cpu-spot", "gpu-spot"):
        pool = catalog.get(name)
        assert pool.spot and pool.scales_to_zero and pool.runs_tasks
        assert len(pool.instance_types) >= 3
    families = {t.split(".")[0] for t in catalog.get("gpu-spot").instance_types}
    assert families == {"g4dn", "g5", "g6"}
    with pytest.raises(KeyError, match="cpu-spot"):
        catalog.get("tpu")


def test_pools_file_can_be_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moved = tmp_path / "pools.json"
    shutil.copy(POOLS_JSON, moved)
    monkeypatch.setenv(gateway_pools.POOLS_FILE_ENV, str(moved))
    assert gateway_pools.pools_file() == moved
    assert gateway_pools.load_catalog(moved).names() == ["platform", "cpu-spot", "gpu-spot"]
