"""Finding the Terraform toolchain for the tests, offline: the terraform binary, the provider mirror, checkov.

- terraform: ``$TASKAPI_TERRAFORM`` or ``terraform`` on PATH.
- provider mirror (a ``-plugin-dir``): ``$TASKAPI_TF_PLUGIN_DIR``, else the parent of the first directory
  named ``registry.terraform.io`` (holding ``hashicorp/aws``) found at most 4 levels below ``/``
  (the same search as ``scripts/tf-env.sh``). Nothing is hard-coded.
- checkov: ``$TASKAPI_CHECKOV``, else the checkov of its own venv (``$TASKAPI_CHECKOV_VENV``, default
  ``~/.cache/taskapi/venv-checkov``), created on first use with the pinned :data:`CHECKOV_REQUIREMENT`.
  checkov cannot share the test venv: its pinned bc-python-hcl2 clashes with python-hcl2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
CHECKOV_REQUIREMENT = "checkov==3.3.30"
_PRUNE = {"/proc", "/sys", "/dev", "/run", "/tmp", "/var/lib/docker", "/var/lib/containers"}


def find_terraform() -> str | None:
    """The terraform binary, or None."""
    explicit = os.environ.get("TASKAPI_TERRAFORM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("terraform")


def _is_mirror(registry_dir: Path) -> bool:
    return (registry_dir / "hashicorp" / "aws").is_dir()


def find_plugin_mirror(root: str = "/", max_depth: int = 4) -> Path | None:
    """The provider mirror directory to pass as ``terraform init -plugin-dir``, or None."""
    explicit = os.environ.get("TASKAPI_TF_PLUGIN_DIR")
    if explicit:
        path = Path(explicit)
        return path if _is_mirror(path / "registry.terraform.io") else None
    base_depth = root.rstrip("/").count("/")
    for current, dirs, _files in os.walk(root):
        if current in _PRUNE:
            dirs[:] = []
            continue
        depth = current.rstrip("/").count("/") - base_depth
        if "registry.terraform.io" in dirs and _is_mirror(Path(current) / "registry.terraform.io"):
            return Path(current)
        if depth >= max_depth - 1:
            dirs[:] = []
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".") or d == ".terraform.d"]
    return None


def checkov_venv() -> Path:
    """Where checkov's own virtual environment lives."""
    explicit = os.environ.get("TASKAPI_CHECKOV_VENV")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "taskapi" / "venv-checkov"


def find_checkov() -> str | None:
    """An installed checkov, or None."""
    explicit = os.environ.get("TASKAPI_CHECKOV")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    candidate = checkov_venv() / "bin" / "checkov"
    return str(candidate) if candidate.is_file() else None


def ensure_checkov() -> str:
    """checkov from its own venv, creating the venv (pip install of the pinned checkov) when missing."""
    found = find_checkov()
    if found:
        return found
    if os.environ.get("TASKAPI_CHECKOV"):
        raise FileNotFoundError(f"TASKAPI_CHECKOV={os.environ['TASKAPI_CHECKOV']} does not exist")
    target = checkov_venv()
    if not (target / "bin" / "python").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
    subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-input", CHECKOV_REQUIREMENT],
        check=True,
    )  # fmt: skip
    checkov = target / "bin" / "checkov"
    if not checkov.is_file():
        raise FileNotFoundError(f"pip installed {CHECKOV_REQUIREMENT} into {target} but there is no {checkov}")
    return str(checkov)


if __name__ == "__main__":  # `python tests/terraform/tftools.py mirror|terraform|checkov`
    what = sys.argv[1] if len(sys.argv) > 1 else "mirror"
    result = {"mirror": find_plugin_mirror, "terraform": find_terraform, "checkov": ensure_checkov}[what]()
    if result is None:
        sys.exit(f"no {what} found")
    print(result)
