"""The Terraform root module under ``terraform/``, driven through python-terraform."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, IsNotFlagged, Terraform

PLUGIN_DIR_ENV = "TASKAPI_TF_PLUGIN_DIR"


class StackError(RuntimeError):
    """Terraform failed; the message carries the end of its output."""


def default_module_dir() -> Path:
    """``terraform/`` of this checkout, or ``$TASKAPI_TERRAFORM_DIR``."""
    configured = os.environ.get("TASKAPI_TERRAFORM_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "terraform"


def _tail(text: str | None, lines: int = 25) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


class Stack:
    """One Terraform working directory: init, apply, outputs, destroy.

    ``plugin_dir`` makes ``init`` use a local provider mirror (offline installs); ``variables`` are passed as
    ``-var`` and ``var_file`` as ``-var-file`` to apply and destroy alike, so both see the same configuration.
    """

    def __init__(
        self,
        module_dir: Path,
        variables: Mapping[str, str] | None = None,
        var_file: Path | None = None,
        plugin_dir: Path | None = None,
    ) -> None:
        if shutil.which("terraform") is None:
            raise StackError("terraform is not installed (https://developer.hashicorp.com/terraform/install)")
        if not (module_dir / "versions.tf").exists() and not any(module_dir.glob("*.tf")):
            raise StackError(f"{module_dir} holds no Terraform module")
        self.module_dir = module_dir
        self.plugin_dir = plugin_dir or (Path(os.environ[PLUGIN_DIR_ENV]) if os.environ.get(PLUGIN_DIR_ENV) else None)
        self.tf = Terraform(
            working_dir=str(module_dir),
            variables=dict(variables or {}),
            var_file=str(var_file) if var_file else None,
        )

    def _run(self, what: str, *args: Any, **kwargs: Any) -> str:
        code, out, err = getattr(self.tf, what)(*args, capture_output=True, **kwargs)
        if code != 0:
            raise StackError(f"terraform {what} failed (exit {code}):\n{_tail(err) or _tail(out)}")
        return str(out or "")

    def init(self) -> None:
        """``terraform init``, from the local provider mirror when one is configured."""
        options = {"plugin_dir": str(self.plugin_dir)} if self.plugin_dir else {}
        # Through cmd(): init takes no -var, which python-terraform's init() would add.
        code, out, err = self.tf.cmd("init", input=False, no_color=IsFlagged, capture_output=True, **options)
        if code != 0:
            raise StackError(f"terraform init failed (exit {code}):\n{_tail(err) or _tail(out)}")

    def apply(self) -> dict[str, Any]:
        """``terraform apply -auto-approve``; the outputs afterwards."""
        self._run("apply", skip_plan=True)
        return self.outputs()

    def outputs(self) -> dict[str, Any]:
        """The module's outputs as plain values (empty before the first apply)."""
        code, out, err = self.tf.cmd("output", json=IsFlagged, no_color=IsFlagged, capture_output=True)
        if code != 0:
            raise StackError(f"terraform output failed (exit {code}):\n{_tail(err)}")
        raw = json.loads(out or "{}")
        return {name: entry.get("value") for name, entry in raw.items()}

    def destroy(self) -> None:
        """``terraform destroy -auto-approve`` (Terraform 1.x has no ``-force``)."""
        self._run("destroy", force=IsNotFlagged, auto_approve=True, no_color=IsFlagged)
