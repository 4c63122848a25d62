"""The Task API spec: Cortex's ``kind: TaskAPI`` plus this project's extensions (DESIGN section 2).

This module is the one place where specs are validated. ``parse_specs`` turns YAML or JSON text into
validated ``TaskAPISpec`` objects or raises ``SpecError`` listing every invalid field with its path.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from gateway.units import parse_cpu, parse_duration, parse_memory

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
RESERVED_NAMES = frozenset({"v1", "healthz", "readyz", "metrics", "openapi.json", "docs"})
DRIVERS = ("docker", "podman", "process")


def _dns_label(value: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DNS label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def _not_reserved(value: str) -> str:
    if value in RESERVED_NAMES:
        raise ValueError(f"{value!r} is reserved (reserved: {', '.join(sorted(RESERVED_NAMES))})")
    return value


def _as_text(value: Any) -> str:
    # Quantities may be written as numbers (cpu: 1, delay: 30); they are kept as text.
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError("wrong type: expected a number or a string")


def _check_cpu(value: str) -> str:
    parse_cpu(value)
    return value


def _check_memory(value: str) -> str:
    parse_memory(value)
    return value


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
ApiName = Annotated[str, AfterValidator(_dns_label), AfterValidator(_not_reserved)]
Duration = Annotated[str, BeforeValidator(_as_text), AfterValidator(_check_duration)]
CpuQuantity = Annotated[str, BeforeValidator(_as_text), AfterValidator(_check_cpu)]
MemoryQuantity = Annotated[str, BeforeValidator(_as_text), AfterValidator(_check_memory)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Compute(_Strict):
    """Resources one container asks for; quantities as in Kubernetes."""

    cpu: CpuQuantity = "200m"
    gpu: int = Field(0, ge=0, le=16, strict=True)
    mem: MemoryQuantity | None = None
    shm: MemoryQuantity | None = None

    @property
    def millicores(self) -> int:
        """CPU in thousandths of a core."""
        return parse_cpu(self.cpu)

    @property
    def memory_bytes(self) -> int | None:
        """Memory limit in bytes, or None for no limit."""
        return None if self.mem is None else parse_memory(self.mem)

    @property
    def shm_bytes(self) -> int | None:
        """Size of /dev/shm in bytes, or None for the runtime's default."""
        return None if self.shm is None else parse_memory(self.shm)


class Container(_Strict):
    """One container of a task; the first container of a pod leads."""

    name: DnsLabel
    image: str | None = Field(None, min_length=1, max_length=512)
    command: list[Annotated[str, Field(max_length=65536)]] = Field(min_length=1)
    args: list[Annotated[str, Field(max_length=65536)]] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    compute: Compute = Field(default_factory=Compute)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if key.startswith("TASKAPI_"):
                raise ValueError(f"{key!r}: the TASKAPI_ prefix is reserved for the platform")
        return env

    @property
    def argv(self) -> list[str]:
        """The full argument vector: command then args."""
        return [*self.command, *self.args]


class Pod(_Strict):
    """The containers of one task."""

    containers: list[Container] = Field(min_length=1, max_length=16)

    @field_validator("containers")
    @classmethod
    def _unique_names(cls, containers: list[Container]) -> list[Container]:
        names = [c.name for c in containers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"container names must be unique; repeated: {', '.join(duplicates)}")
        return containers


class Networking(_Strict):
    """Where the API's task endpoints live."""

    endpoint: ApiName | None = None

    @field_validator("endpoint", mode="before")
    @classmethod
    def _strip_slash(cls, value: Any) -> Any:
        return value.strip("/") if isinstance(value, str) else value


class Retry(_Strict):
    """Extra attempts after a failed attempt (exit != 0 or OOM), as Nomad's reschedule block."""

    attempts: int = Field(0, ge=0, le=100, strict=True)
    delay: Duration = "5s"
    delay_function: Literal["constant", "exponential", "fibonacci"] = "constant"
    max_delay: Duration = "1h"

    @property
    def delay_seconds(self) -> float:
        """The base delay in seconds."""
        return parse_duration(self.delay)

    @property
    def max_delay_seconds(self) -> float:
        """The cap on any one delay, in seconds."""
        return parse_duration(self.max_delay)


class TaskAPISpec(_Strict):
    """A validated Task API spec."""

    name: ApiName
    kind: Literal["TaskAPI"]
    pod: Pod
    node_groups: list[DnsLabel] | None = None
    networking: Networking = Field(default_factory=Networking)
    retry: Retry = Field(default_factory=Retry)
    timeout: int = Field(3600, gt=0, le=30 * 24 * 3600, strict=True)
    max_concurrency: int = Field(0, ge=0, strict=True)
    kill_timeout: Duration = "30s"
    driver: Literal["docker", "podman", "process"] | None = None

    @property
    def endpoint(self) -> str:
        """The path segment of the task endpoints (``networking.endpoint``, default the name)."""
        return self.networking.endpoint or self.name

    @property
    def kill_timeout_seconds(self) -> float:
        """Grace between SIGTERM and SIGKILL, in seconds."""
        return parse_duration(self.kill_timeout)

    def to_document(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict, defaults included."""
        return self.model_dump(mode="json")


class SpecError(ValueError):
    """A spec that cannot be accepted; ``errors`` lists ``{"path", "message"}`` for each problem."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in errors))


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: dict[str, Any]) -> str:
    message = str(error["msg"])
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    return message


def validate_spec(document: Any, prefix: str = "") -> TaskAPISpec:
    """Validate one spec document (already parsed from YAML/JSON)."""
    if not isinstance(document, dict):
        raise SpecError([{"path": prefix, "message": "a Task API spec must be a mapping"}])
    try:
        spec = TaskAPISpec.model_validate(document)
    except ValidationError as exc:
        seen: dict[str, str] = {}
        for err in exc.errors():
            seen.setdefault(_path(prefix, err["loc"]), _message(err))
        raise SpecError([{"path": p, "message": m} for p, m in seen.items()]) from None
    missing = [
        {"path": _path(prefix, ("pod", "containers", i, "image")), "message": f"required with driver {spec.driver!r}"}
        for i, container in enumerate(spec.pod.containers)
        if spec.driver in ("docker", "podman") and not container.image
    ]
    if missing:
        raise SpecError(missing)
    return spec


def load_documents(text: str | bytes) -> list[Any]:
    """The spec documents in YAML or JSON text: one mapping or a list of them."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError([{"path": "", "message": "the spec is not UTF-8 text"}]) from None
    try:
        documents = [d for d in [json.loads(text)] if d is not None]
    except ValueError:
        try:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise SpecError([{"path": "", "message": f"not valid YAML or JSON: {exc}"}]) from None
    if not documents:
        raise SpecError([{"path": "", "message": "the spec is empty"}])
    # One document holding a list, or several YAML documents each holding one spec.
    if len(documents) == 1 and isinstance(documents[0], list):
        return documents[0]
    return documents


def parse_specs(text: str | bytes) -> list[TaskAPISpec]:
    """Validate YAML or JSON text holding one spec or a list; every problem is reported at once."""
    documents = load_documents(text)
    if not documents:
        raise SpecError([{"path": "", "message": "the list of specs is empty"}])
    specs: list[TaskAPISpec] = []
    errors: list[dict[str, str]] = []
    for i, document in enumerate(documents):
        name = document.get("name") if isinstance(document, dict) else None
        prefix = name if isinstance(name, str) and DNS_LABEL.fullmatch(name) else f"[{i}]"
        try:
            specs.append(validate_spec(document, prefix if len(documents) > 1 else ""))
        except SpecError as exc:
            errors.extend(exc.errors)
    names = [s.name for s in specs]
    endpoints = [s.endpoint for s in specs]
    for label, values in (("name", names), ("endpoint", endpoints)):
        for value in sorted({v for v in values if values.count(v) > 1}):
            errors.append({"path": "", "message": f"two specs share the {label} {value!r}"})
    if errors:
        raise SpecError(errors)
    return specs
