"""Settings of the gateway and the local runner, read from ``TASKAPI_*`` environment variables.

CLI flags override them (the CLI builds a ``Settings`` with the flags it was given).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/taskapi``, else ``~/.local/state/taskapi``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "taskapi"


def _nomad_alias(name: str) -> AliasChoices:
    """``TASKAPI_NOMAD_<NAME>``, then Nomad's own ``NOMAD_<NAME>``, then the field name (for flags)."""
    return AliasChoices(f"TASKAPI_NOMAD_{name.upper()}", f"NOMAD_{name.upper()}", f"nomad_{name}")


class Settings(BaseSettings):
    """Everything the gateway and the runner can be told; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TASKAPI_", extra="ignore")

    backend: Literal["local", "nomad"] = "local"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(2, ge=1, le=64)
    threads: int = Field(8, ge=1, le=256, description="Threads per gunicorn worker (log streams hold one).")
    state_dir: Path = Field(default_factory=default_state_dir)
    api_keys: str | None = Field(None, description="Comma-separated bearer keys.")
    api_keys_file: Path | None = Field(None, description="A file with one bearer key per line.")
    insecure: bool = Field(False, description="Serve beyond loopback without keys.")
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    public_url: str | None = Field(None, description="Base URL used in the 'endpoint' of task answers.")
    log_level: str = "info"

    # Local runner.
    cpus: float | None = Field(None, gt=0, description="CPU cores tasks may use; default all of the host.")
    memory: str | None = Field(None, description="Memory tasks may use (e.g. 8Gi); default the host's.")
    gpus: int | None = Field(None, ge=0, description="GPUs tasks may use; default those nvidia-smi lists.")
    driver: Literal["docker", "podman", "process"] | None = Field(
        None, description="Default driver for specs that name none; default a container runtime if present."
    )
    podman_args: str = Field("", description="Global podman arguments, e.g. '--runtime runc'.")
    podman_run_args: str = Field("", description="Extra 'podman run' arguments, e.g. '--ulimit nofile=1024:1024'.")
    docker_args: str = ""
    docker_run_args: str = ""

    # Nomad backend: each setting also reads the variable Nomad's own CLI reads (NOMAD_ADDR, ...);
    # TASKAPI_NOMAD_* wins when both are set.
    nomad_addr: str = Field("http://127.0.0.1:4646", validation_alias=_nomad_alias("addr"))
    nomad_token: str | None = Field(None, validation_alias=_nomad_alias("token"), description="ACL token.")
    nomad_namespace: str | None = Field(None, validation_alias=_nomad_alias("namespace"))
    nomad_region: str | None = Field(None, validation_alias=_nomad_alias("region"))
    nomad_cacert: Path | None = Field(
        None, validation_alias=_nomad_alias("cacert"), description="CA certificate that signed Nomad's."
    )
    nomad_client_cert: Path | None = Field(None, validation_alias=_nomad_alias("client_cert"))
    nomad_client_key: Path | None = Field(None, validation_alias=_nomad_alias("client_key"))
    nomad_skip_verify: bool = Field(
        False, validation_alias=_nomad_alias("skip_verify"), description="Do not verify Nomad's TLS certificate."
    )
    archive: str | None = Field(
        None, description="Where finished Nomad tasks are archived: s3://bucket/prefix or a directory."
    )

    def keys(self) -> list[str]:
        """The configured bearer keys (from ``api_keys`` and ``api_keys_file``)."""
        keys = [k.strip() for k in (self.api_keys or "").split(",") if k.strip()]
        if self.api_keys_file:
            lines = self.api_keys_file.read_text().splitlines()
            keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return keys

    def runtime_args(self, runtime: str) -> tuple[list[str], list[str]]:
        """Global and run arguments configured for ``podman`` or ``docker``."""
        if runtime == "podman":
            return shlex.split(self.podman_args), shlex.split(self.podman_run_args)
        return shlex.split(self.docker_args), shlex.split(self.docker_run_args)
