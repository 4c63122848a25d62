"""Fixtures of the Terraform tests: the toolchain (found, never hard-coded), one `terraform init` per session
in a temporary copy of terraform/, and ONE real `terraform apply` of the root module against a moto server
(the session's, from tests/moto_server.py) whose outputs the tests read, destroyed at the end.

In CI (CI=true) a missing terraform, provider mirror, moto or checkov fails the tests instead of skipping them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.moto_server import MotoServer
from tests.nomad_double import NomadDouble
from tests.terraform import tftools

REPO = Path(__file__).resolve().parents[2]


def missing(what: str) -> None:
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (required in CI)")
    pytest.skip(what)


@dataclass
class Terraform:
    """The terraform binary with an offline environment and the provider mirror."""

    binary: str
    plugin_dir: Path
    env: dict[str, str]

    def run(self, cwd: Path, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``terraform <args>`` in ``cwd``; on failure the assertion shows its output."""
        result = subprocess.run(
            [self.binary, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed in {cwd} ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def init(self, cwd: Path) -> None:
        """``terraform init`` from the local mirror only (no registry, no backend)."""
        self.run(cwd, "init", "-input=false", "-no-color", "-backend=false", f"-plugin-dir={self.plugin_dir}")


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    """The terraform toolchain, or a skip (a failure in CI)."""
    binary = tftools.find_terraform()
    if not binary:
        missing("terraform is not installed (or $TASKAPI_TERRAFORM is wrong)")
    mirror = tftools.find_plugin_mirror()
    if not mirror:
        missing("no Terraform provider mirror with hashicorp/aws found (set TASKAPI_TF_PLUGIN_DIR)")
    home = tmp_path_factory.mktemp("tf-home")
    cli_config = home / "terraformrc"
    cli_config.write_text("# empty: no plugin cache, no network mirrors\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_"))}
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return Terraform(binary=str(binary), plugin_dir=Path(str(mirror)), env=env)


@pytest.fixture(scope="session")
def tf_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of terraform/ (no .terraform dirs, no state, no tfvars of a developer)."""
    target = tmp_path_factory.mktemp("tf") / "terraform"
    shutil.copytree(
        tftools.TERRAFORM_DIR,
        target,
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfvars", ".terraform.lock.hcl"),
    )
    return target


@pytest.fixture(scope="session")
def tf_root(terraform: Terraform, tf_copy: Path) -> Path:
    """The root module's copy, initialised once for the session."""
    terraform.init(tf_copy)
    return tf_copy


@dataclass
class Stack:
    """The root module applied against moto by `taskapi cluster up`, its jobs registered in a Nomad double."""

    name: str
    workdir: Path
    moto: MotoServer
    variables: dict[str, Any]
    nomad: NomadDouble
    env: dict[str, str]
    outputs: dict[str, Any] = field(default_factory=dict)
    registered_jobs: list[str] = field(default_factory=list)
    destroyed: bool = False

    def client(self, service: str) -> Any:
        """A boto3 client on the moto server."""
        return self.moto.client(service)

    def taskapi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the `taskapi` CLI with the stack's environment (terraform offline, moto, the saved profile)."""
        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"taskapi {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


def _moto_ami(moto: MotoServer) -> str:
    images = moto.client("ec2").describe_images(Filters=[{"Name": "name", "Values": ["ubuntu/images/*"]}])["Images"]
    assert images, "moto has no Ubuntu image to launch"
    return str(images[0]["ImageId"])


@pytest.fixture(scope="session")
def stack(
    terraform: Terraform,
    tf_root: Path,
    moto_server: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """`taskapi cluster up` (terraform apply) against moto, once per session; destroyed at the end."""
    name = f"tft{secrets.token_hex(3)}"
    ami = _moto_ami(moto_server)
    variables: dict[str, Any] = {
        "name": name,
        "region": moto_server.env["AWS_DEFAULT_REGION"],
        "aws_endpoint_url": moto_server.endpoint_url,
        "ami_id": ami,
        "gpu_ami_id": ami,
        "nomad_sha256": secrets.token_hex(32),
        "nvidia_plugin_sha256": secrets.token_hex(32),
        "nomad_gossip_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "nomad_acl_bootstrap_token": str(uuid.uuid4()),
        "wait_for_capacity_timeout": "0",
        "force_destroy_archive": True,
    }
    (tf_root / "test.auto.tfvars.json").write_text(json.dumps(variables, indent=2))
    env = {
        **terraform.env,
        "TASKAPI_TF_PLUGIN_DIR": str(terraform.plugin_dir),
        "TASKAPI_CONFIG": str(tmp_path_factory.mktemp("profile") / "config.json"),
    }
    with NomadDouble() as nomad:
        created = Stack(name=name, workdir=tf_root, moto=moto_server, variables=variables, nomad=nomad, env=env)
        try:
            up = created.taskapi("cluster", "up", "-o", "json", "--dir", str(tf_root), "--nomad-addr", nomad.address,
                                 "--api-key", "cluster-test-key", "--wait", "30",
                                 "--gateway-image", "registry.example/taskapi:0.1.0")  # fmt: skip
            answer = json.loads(up.stdout)
            created.registered_jobs = answer.pop("registered_jobs")
            answer.pop("profile")
            created.outputs = answer
            yield created
        finally:
            if not created.destroyed:
                terraform.run(tf_root, "destroy", "-auto-approve", "-input=false", "-no-color", check=False)
