"""A pragmatic HCL jobspec → Nomad JSON job translation for ``POST /v1/jobs/parse``.

Uses python-hcl2 when it is installed and a small built-in parser otherwise (attributes, labelled blocks,
strings, numbers, booleans, lists, objects, comments; no interpolation functions or heredocs). Covers the
job, group and task blocks a Task API jobspec uses: type, datacenters, node_pool, priority, namespace,
region, meta, parameterized, constraint, group (count, max_run_duration, restart, reschedule, meta,
constraint, task (driver, config, env, resources with device, dispatch_payload, kill_timeout, leader, meta,
user, lifecycle)).
"""

from __future__ import annotations

import re
from typing import Any

from .util import duration_ns

Body = dict[str, Any]

_TOKEN_RE = re.compile(
    r"""(?P<ws>\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/)
      |(?P<str>"(?:[^"\\]|\\.)*")
      |(?P<num>-?\d+(?:\.\d+)?)
      |(?P<ident>[A-Za-z_][A-Za-z0-9_\-.]*)
      |(?P<punct>[{}\[\]=,:])""",
    re.VERBOSE | re.DOTALL,
)


class HCLError(ValueError):
    """A jobspec the parser cannot read."""


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            line = text.count("\n", 0, pos) + 1
            raise HCLError(f"input.hcl:{line}: Invalid character; {text[pos]!r}")
        pos = match.end()
        kind = match.lastgroup
        raw = match.group(kind or "")
        if kind == "ws":
            if "\n" in raw:
                out.append(("nl", "\n"))
            continue
        if kind == "str":
            out.append(("str", bytes(raw[1:-1], "utf-8").decode("unicode_escape")))
        elif kind == "num":
            out.append(("num", float(raw) if "." in raw else int(raw)))
        elif kind == "ident":
            out.append(("ident", raw))
        else:
            out.append(("punct", raw))
    return out


class _MiniParser:
    """Recursive-descent parser producing ``{attr: value, block_type: [{label: ... {body}}]}``."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.pos = 0

    def _skip_nl(self) -> None:
        while self.pos < len(self.toks) and self.toks[self.pos][0] == "nl":
            self.pos += 1

    def _next(self) -> tuple[str, Any]:
        self._skip_nl()
        if self.pos >= len(self.toks):
            raise HCLError("unexpected end of input")
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def _peek(self) -> tuple[str, Any] | None:
        self._skip_nl()
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def body(self, closing: bool) -> Body:
        out: Body = {}
        while True:
            tok = self._peek()
            if tok is None:
                if closing:
                    raise HCLError("missing closing brace")
                return out
            if tok == ("punct", "}"):
                if not closing:
                    raise HCLError("unexpected closing brace")
                self.pos += 1
                return out
            kind, name = self._next()
            if kind not in ("ident", "str"):
                raise HCLError(f"unexpected {name!r}")
            nxt = self._peek()
            if nxt == ("punct", "="):
                self.pos += 1
                out[name] = self.value()
                continue
            labels: list[str] = []
            while True:
                nxt = self._next()
                if nxt == ("punct", "{"):
                    break
                if nxt[0] not in ("str", "ident"):
                    raise HCLError(f"unexpected {nxt[1]!r} in block header of {name!r}")
                labels.append(nxt[1])
            inner = self.body(True)
            for label in reversed(labels):
                inner = {label: inner}
            out.setdefault(name, []).append(inner)

    def value(self) -> Any:
        kind, tok = self._next()
        if kind in ("str", "num"):
            return tok
        if kind == "ident":
            if tok in ("true", "false"):
                return tok == "true"
            if tok == "null":
                return None
            return "${" + tok + "}"
        if tok == "[":
            items = []
            while True:
                if self._peek() == ("punct", "]"):
                    self.pos += 1
                    return items
                items.append(self.value())
                if self._peek() == ("punct", ","):
                    self.pos += 1
        if tok == "{":
            obj: dict[str, Any] = {}
            while True:
                nxt = self._next()
                if nxt == ("punct", "}"):
                    return obj
                if nxt == ("punct", ","):
                    continue
                if self._next() not in (("punct", "="), ("punct", ":")):
                    raise HCLError("expected '=' in object")
                obj[str(nxt[1])] = self.value()
        raise HCLError(f"unexpected {tok!r}")


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    return value


def load(text: str) -> Body:
    """Parse HCL text into the nested dict/list structure of python-hcl2 (quotes stripped)."""
    try:
        import hcl2  # type: ignore[import-not-found]
    except ImportError:
        return _MiniParser(text).body(False)
    try:
        return _unquote(hcl2.loads(text))
    except Exception as exc:  # python-hcl2 raises lark errors of several kinds
        raise HCLError(str(exc).splitlines()[0]) from exc


def load_builtin(text: str) -> Body:
    """Parse with the built-in parser only (for tests of the fallback)."""
    return _MiniParser(text).body(False)


def _blocks(body: Body, name: str) -> list[tuple[str | None, Body]]:
    out: list[tuple[str | None, Body]] = []
    for entry in body.get(name) or []:
        if isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry.values())), dict) \
                and name in ("job", "group", "task", "device"):
            label, inner = next(iter(entry.items()))
            out.append((label, inner))
        else:
            out.append((None, entry))
    return out


def _one(body: Body, name: str) -> Body | None:
    value = body.get(name)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _dur(value: Any) -> int:
    return duration_ns(value)


def _map(body: Body, name: str) -> dict[str, Any] | None:
    value = _one(body, name)
    if value is None:
        return None
    return {str(k): v for k, v in value.items()}


def _constraints(body: Body) -> list[dict[str, Any]] | None:
    out = []
    for _, c in _blocks(body, "constraint"):
        out.append({"LTarget": c.get("attribute", ""), "RTarget": str(c.get("value", "")),
                    "Operand": c.get("operator", "=")})
    return out or None


def _policy(block: Body | None, mapping: dict[str, str], durations: tuple[str, ...]) -> dict[str, Any] | None:
    if block is None:
        return None
    out: dict[str, Any] = {}
    for key, target in mapping.items():
        if key in block:
            out[target] = _dur(block[key]) if target in durations else block[key]
    return out


def _task(name: str, body: Body) -> dict[str, Any]:
    task: dict[str, Any] = {"Name": name, "Driver": body.get("driver", ""), "Config": _map(body, "config"),
                            "Env": _map(body, "env"), "Meta": _map(body, "meta"), "User": body.get("user", ""),
                            "Leader": bool(body.get("leader", False))}
    if "kill_timeout" in body:
        task["KillTimeout"] = _dur(body["kill_timeout"])
    res = _one(body, "resources")
    if res is not None:
        resources: dict[str, Any] = {}
        for key, target in (("cpu", "CPU"), ("cores", "Cores"), ("memory", "MemoryMB"),
                            ("memory_max", "MemoryMaxMB")):
            if key in res:
                resources[target] = res[key]
        devices = [{"Name": label, "Count": dev.get("count", 1)} for label, dev in _blocks(res, "device")]
        if devices:
            resources["Devices"] = devices
        task["Resources"] = resources
    payload = _one(body, "dispatch_payload")
    if payload is not None:
        task["DispatchPayload"] = {"File": payload.get("file", "")}
    lifecycle = _one(body, "lifecycle")
    if lifecycle is not None:
        task["Lifecycle"] = {"Hook": lifecycle.get("hook", ""), "Sidecar": bool(lifecycle.get("sidecar", False))}
    task["Constraints"] = _constraints(body)
    return task


def _group(name: str, body: Body) -> dict[str, Any]:
    group: dict[str, Any] = {"Name": name, "Count": body.get("count", 1), "Meta": _map(body, "meta"),
                             "Constraints": _constraints(body)}
    if "max_run_duration" in body:
        group["MaxRunDuration"] = _dur(body["max_run_duration"])
    group["RestartPolicy"] = _policy(_one(body, "restart"), {"attempts": "Attempts", "interval": "Interval",
                                                              "delay": "Delay", "mode": "Mode"},
                                     ("Interval", "Delay"))
    group["ReschedulePolicy"] = _policy(
        _one(body, "reschedule"),
        {"attempts": "Attempts", "interval": "Interval", "delay": "Delay", "delay_function": "DelayFunction",
         "max_delay": "MaxDelay", "unlimited": "Unlimited"},
        ("Interval", "Delay", "MaxDelay"))
    group["Tasks"] = [_task(tname or "", tbody) for tname, tbody in _blocks(body, "task")]
    return group


# Nomad parses API submissions with the filesystem functions disabled (the CLI enables them on its own host).
_FS_CALL = re.compile(r"\b(file|fileexists|fileset|filebase64|templatefile)\s*\(")


_DECLARED = re.compile(r'^variable\s+"([^"]+)"\s*\{(.*?)^\}', re.MULTILINE | re.DOTALL)
_ASSIGNED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=", re.MULTILINE)


def check_variables(text: str, variables: str) -> None:
    """Refuse, as Nomad does, a jobspec whose variable has neither a default nor a value in ``Variables``."""
    given = set(_ASSIGNED.findall(variables or ""))
    for match in _DECLARED.finditer(text):
        name, block = match.group(1), match.group(2)
        if name not in given and not re.search(r"^\s*default\s*=", block, re.MULTILINE):
            line = text.count("\n", 0, match.start()) + 1
            raise HCLError(
                f'input.hcl:{line},1-{len(name) + 12}: Unset variable "{name}"; A used variable must be set or '
                "have a default value; see https://developer.hashicorp.com/nomad/docs/job-specification/hcl2/"
                "variables for details."
            )


def jobspec_to_json(text: str) -> dict[str, Any]:
    """Translate an HCL jobspec to the API's JSON job (not canonicalized)."""
    call = _FS_CALL.search(text)
    if call:
        line = text.count("\n", 0, call.start()) + 1
        raise HCLError(
            f'input.hcl:{line}: Error in function call; Call to function "{call.group(1)}" failed: '
            "filesystem function disabled."
        )
    body = load(text)
    jobs = _blocks(body, "job")
    if len(jobs) != 1:
        raise HCLError("input.hcl: expected exactly one job block")
    job_id, jbody = jobs[0]
    job: dict[str, Any] = {"ID": job_id, "Name": jbody.get("name", job_id), "Type": jbody.get("type"),
                           "Meta": _map(jbody, "meta"), "Constraints": _constraints(jbody)}
    for key, target in (("datacenters", "Datacenters"), ("node_pool", "NodePool"), ("priority", "Priority"),
                        ("namespace", "Namespace"), ("region", "Region"), ("all_at_once", "AllAtOnce")):
        if key in jbody:
            job[target] = jbody[key]
    param = _one(jbody, "parameterized")
    if param is not None:
        job["ParameterizedJob"] = {"Payload": param.get("payload", "optional"),
                                   "MetaRequired": param.get("meta_required"),
                                   "MetaOptional": param.get("meta_optional")}
    job["TaskGroups"] = [_group(gname or "", gbody) for gname, gbody in _blocks(jbody, "group")] or None
    return job


API_JOB_KEYS = (
    "Region", "Namespace", "ID", "Name", "Type", "Priority", "AllAtOnce", "Datacenters", "NodePool", "Constraints",
    "Affinities", "TaskGroups", "Update", "Multiregion", "Spreads", "Periodic", "ParameterizedJob", "Reschedule",
    "Migrate", "Meta", "ConsulToken", "VaultToken", "Stop", "ParentID", "Dispatched", "DispatchIdempotencyToken",
    "Payload", "ConsulNamespace", "VaultNamespace", "NomadTokenID", "Status", "StatusDescription", "Stable",
    "Version", "SubmitTime", "CreateIndex", "ModifyIndex", "JobModifyIndex",
)


def api_job(job: dict[str, Any]) -> dict[str, Any]:
    """Render a job as the ``api.Job`` JSON that the parse endpoint returns (every field, nulls included)."""
    out = {key: job.get(key) for key in API_JOB_KEYS}
    for key, zero in (("Stop", False), ("ParentID", ""), ("Status", ""), ("StatusDescription", ""),
                      ("Stable", False), ("Version", 0), ("CreateIndex", 0), ("ModifyIndex", 0),
                      ("JobModifyIndex", 0), ("AllAtOnce", False)):
        if out[key] is None:
            out[key] = zero
    return out
