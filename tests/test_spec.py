"""Validation of Task API specs: every invalid field is reported with its path and the reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gateway.spec import RESERVED_NAMES, SpecError, TaskAPISpec, load_documents, parse_specs, validate_spec

Doc = dict[str, Any]

MINIMAL: Doc = {
    "name": "trainer",
    "kind": "TaskAPI",
    "pod": {"containers": [{"name": "main", "command": ["python3", "train.py"]}]},
}

# The example from reference/CORTEX-TASK-API.md, as a Cortex user would write it.
CORTEX_YAML = """
- name: trainer                 # required
  kind: TaskAPI
  pod:
    containers:                 # at least one
      - name: main
        image: quay.io/org/trainer:1.2
        command: ["python", "train.py"]   # required, an argv list, never run through a shell
        args: []
        env: {KEY: value}
        compute: {cpu: 200m, gpu: 0, mem: 1Gi, shm: 64Mi}   # cpu default 200m
  node_groups: [gpu-spot]       # default: all node groups
  networking: {endpoint: trainer}   # default: the API name
"""


def spec(**changes: Any) -> Doc:
    """MINIMAL with top-level keys changed (a value of ... removes the key)."""
    doc = copy.deepcopy(MINIMAL)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def container(**changes: Any) -> Doc:
    """MINIMAL with keys of its first container changed (a value of ... removes the key)."""
    doc = copy.deepcopy(MINIMAL)
    c = doc["pod"]["containers"][0]
    for key, value in changes.items():
        if value is ...:
            c.pop(key, None)
        else:
            c[key] = value
    return doc


def as_yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def as_json(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False)


DUMPERS = [pytest.param(as_yaml, id="yaml"), pytest.param(as_json, id="json")]


@pytest.fixture(params=DUMPERS)
def dump(request: pytest.FixtureRequest) -> Callable[[Any], str]:
    return request.param


def errors_of(text: str | bytes) -> list[dict[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_specs(text)
    errors = info.value.errors
    assert errors, "SpecError without errors"
    for error in errors:
        assert set(error) == {"path", "message"}
        assert isinstance(error["path"], str)
        assert error["message"]
    return errors


def error_map(text: str | bytes) -> dict[str, str]:
    """path -> message; fails if a path appears twice."""
    errors = errors_of(text)
    paths = [e["path"] for e in errors]
    assert len(paths) == len(set(paths)), errors
    return {e["path"]: e["message"] for e in errors}


def only_error(text: str | bytes) -> tuple[str, str]:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    return errors[0]["path"], errors[0]["message"]


# --- valid specs and defaults ----------------------------------------------------------------------------


def test_minimal_spec_and_defaults(dump: Callable[[Any], str]) -> None:
    [api] = parse_specs(dump(MINIMAL))
    assert api.name == "trainer"
    assert api.kind == "TaskAPI"
    assert api.endpoint == "trainer"
    assert api.node_groups is None
    assert api.driver is None
    assert api.timeout == 3600
    assert api.max_concurrency == 0
    assert api.kill_timeout_seconds == 30
    assert api.retry.attempts == 0
    assert api.retry.delay_seconds == 5
    assert api.retry.delay_function == "constant"
    assert api.retry.max_delay_seconds == 3600
    [main] = api.pod.containers
    assert main.image is None
    assert main.argv == ["python3", "train.py"]
    assert main.args == []
    assert main.env == {}
    assert main.compute.millicores == 200
    assert main.compute.gpu == 0
    assert main.compute.memory_bytes is None
    assert main.compute.shm_bytes is None


def test_cortex_reference_spec() -> None:
    [api] = parse_specs(CORTEX_YAML)
    assert api.name == "trainer"
    assert api.node_groups == ["gpu-spot"]
    assert api.endpoint == "trainer"
    [main] = api.pod.containers
    assert main.image == "quay.io/org/trainer:1.2"
    assert main.argv == ["python", "train.py"]
    assert main.env == {"KEY": "value"}
    assert main.compute.millicores == 200
    assert main.compute.memory_bytes == 1024**3
    assert main.compute.shm_bytes == 64 * 1024**2


def test_full_spec_with_extensions(dump: Callable[[Any], str]) -> None:
    doc = spec(
        retry={"attempts": 3, "delay": "10s", "delay_function": "fibonacci", "max_delay": "5m"},
        timeout=600,
        max_concurrency=4,
        kill_timeout="1m30s",
        driver="podman",
        node_groups=["cpu-spot", "gpu-spot"],
        networking={"endpoint": "/train/"},
    )
    doc["pod"]["containers"] = [
        {
            "name": "main",
            "image": "localhost/trainer:1",
            "command": ["python3", "-c", "print(1)"],
            "args": ["--lr", "0.1"],
            "env": {"LR": "0.1", "_X": ""},
            "compute": {"cpu": 1.5, "gpu": 1, "mem": "2Gi", "shm": 1048576},
        },
        {"name": "sidecar", "image": "localhost/sidecar:1", "command": ["sleep", "infinity"]},
    ]
    [api] = parse_specs(dump(doc))
    assert api.endpoint == "train"
    assert api.retry.attempts == 3
    assert api.retry.delay_seconds == 10
    assert api.retry.max_delay_seconds == 300
    assert api.kill_timeout_seconds == 90
    assert api.pod.containers[0].argv == ["python3", "-c", "print(1)", "--lr", "0.1"]
    assert api.pod.containers[0].compute.millicores == 1500
    assert api.pod.containers[0].compute.memory_bytes == 2 * 1024**3
    assert api.pod.containers[0].compute.shm_bytes == 1048576
    assert [c.name for c in api.pod.containers] == ["main", "sidecar"]


def test_to_document_round_trips(dump: Callable[[Any], str]) -> None:
    doc = spec(retry={"attempts": 2}, kill_timeout=5, driver="process")
    [api] = parse_specs(dump(doc))
    document = api.to_document()
    assert document["retry"] == {"attempts": 2, "delay": "5s", "delay_function": "constant", "max_delay": "1h"}
    assert document["pod"]["containers"][0]["compute"] == {"cpu": "200m", "gpu": 0, "mem": None, "shm": None}
    assert parse_specs(json.dumps(document)) == [api]


def test_specs_are_immutable() -> None:
    [api] = parse_specs(as_json(MINIMAL))
    with pytest.raises(ValidationError):
        api.name = "other"  # type: ignore[misc]


def test_yaml_and_json_give_the_same_spec() -> None:
    doc = spec(retry={"attempts": 1, "delay": "2s"}, driver="process")
    assert parse_specs(as_yaml(doc)) == parse_specs(as_json(doc))
    assert parse_specs(as_json(doc).encode()) == parse_specs(as_json(doc))


def test_a_list_of_specs(dump: Callable[[Any], str]) -> None:
    docs = [spec(name="a"), spec(name="b", networking={"endpoint": "bee"}), spec(name="c")]
    apis = parse_specs(dump(docs))
    assert [a.name for a in apis] == ["a", "b", "c"]
    assert [a.endpoint for a in apis] == ["a", "bee", "c"]


def test_a_list_of_one_is_like_one(dump: Callable[[Any], str]) -> None:
    assert parse_specs(dump([MINIMAL])) == parse_specs(dump(MINIMAL))


def test_validate_spec_takes_a_parsed_document() -> None:
    assert validate_spec(copy.deepcopy(MINIMAL)).name == "trainer"
    with pytest.raises(SpecError) as info:
        validate_spec(["not", "a", "mapping"])
    assert info.value.errors == [{"path": "", "message": "a Task API spec must be a mapping"}]


def test_load_documents() -> None:
    assert load_documents('{"name": "a"}') == [{"name": "a"}]
    assert load_documents("- name: a\n- name: b\n") == [{"name": "a"}, {"name": "b"}]
    assert load_documents(b"name: a") == [{"name": "a"}]


# --- the error itself ------------------------------------------------------------------------------------


def test_spec_error_message_names_paths() -> None:
    error = SpecError(
        [
            {"path": "pod.containers[0].command", "message": "required field is missing"},
            {"path": "", "message": "the spec is empty"},
        ]
    )
    assert str(error) == "pod.containers[0].command: required field is missing; the spec is empty"
    assert isinstance(error, ValueError)


# --- unknown fields --------------------------------------------------------------------------------------


def test_unknown_fields_at_every_level_are_all_reported(dump: Callable[[Any], str]) -> None:
    doc = spec(replicas=2, networking={"endpoint": "x", "port": 80}, retry={"attempts": 1, "limit": 3})
    doc["pod"]["volumes"] = []
    doc["pod"]["containers"][0]["ports"] = [80]
    doc["pod"]["containers"][0]["compute"] = {"cpu": 1, "disk": "1Gi"}
    assert error_map(dump(doc)) == {
        "replicas": "unknown field",
        "networking.port": "unknown field",
        "retry.limit": "unknown field",
        "pod.volumes": "unknown field",
        "pod.containers[0].ports": "unknown field",
        "pod.containers[0].compute.disk": "unknown field",
    }


@pytest.mark.parametrize("key", ["Name", "KIND", "predictor", "autoscaling", "update_strategy", "handler_type"])
def test_misspelled_or_other_kind_fields_are_unknown(key: str, dump: Callable[[Any], str]) -> None:
    assert error_map(dump(spec(**{key: "x"}))) == {key: "unknown field"}


# --- missing fields --------------------------------------------------------------------------------------


def test_missing_top_level_fields(dump: Callable[[Any], str]) -> None:
    assert error_map(dump({})) == {
        "name": "required field is missing",
        "kind": "required field is missing",
        "pod": "required field is missing",
    }


def test_missing_container_fields(dump: Callable[[Any], str]) -> None:
    doc = spec(pod={"containers": [{"image": "x"}]})
    assert error_map(dump(doc)) == {
        "pod.containers[0].name": "required field is missing",
        "pod.containers[0].command": "required field is missing",
    }
    assert error_map(dump(spec(pod={}))) == {"pod.containers": "required field is missing"}


# --- wrong types and out-of-range values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (spec(name=123), "name"),
        (spec(name=None), "name"),
        (spec(name=["trainer"]), "name"),
        (spec(kind="BatchAPI"), "kind"),
        (spec(kind="taskapi"), "kind"),
        (spec(pod="main"), "pod"),
        (spec(pod={"containers": {"name": "main", "command": ["x"]}}), "pod.containers"),
        (spec(pod={"containers": []}), "pod.containers"),
        (
            spec(pod={"containers": [MINIMAL["pod"]["containers"][0] | {"name": f"c{i}"} for i in range(17)]}),
            "pod.containers",
        ),
        (spec(pod={"containers": ["main"]}), "pod.containers[0]"),
        (container(command="python3 train.py"), "pod.containers[0].command"),
        (container(command=[]), "pod.containers[0].command"),
        (container(command=["python3", 1]), "pod.containers[0].command[1]"),
        (container(command=["python3", None]), "pod.containers[0].command[1]"),
        (container(args="--lr 0.1"), "pod.containers[0].args"),
        (container(args=["--lr", 0.1]), "pod.containers[0].args[1]"),
        (container(image=""), "pod.containers[0].image"),
        (container(image=["x"]), "pod.containers[0].image"),
        (container(image="x" * 513), "pod.containers[0].image"),
        (container(env=["A=1"]), "pod.containers[0].env"),
        (container(env={"A": 1}), "pod.containers[0].env.A"),
        (container(env={"A": None}), "pod.containers[0].env.A"),
        (container(compute="1 cpu"), "pod.containers[0].compute"),
        (container(compute={"gpu": "one"}), "pod.containers[0].compute.gpu"),
        (container(compute={"gpu": -1}), "pod.containers[0].compute.gpu"),
        (container(compute={"gpu": 17}), "pod.containers[0].compute.gpu"),
        (container(compute={"gpu": 0.5}), "pod.containers[0].compute.gpu"),
        (container(compute={"cpu": [1]}), "pod.containers[0].compute.cpu"),
        (container(compute={"mem": {"size": 1}}), "pod.containers[0].compute.mem"),
        (spec(node_groups="gpu-spot"), "node_groups"),
        (spec(node_groups=[1]), "node_groups[0]"),
        (spec(networking="trainer"), "networking"),
        (spec(networking={"endpoint": 5}), "networking.endpoint"),
        (spec(retry=3), "retry"),
        (spec(retry={"attempts": -1}), "retry.attempts"),
        (spec(retry={"attempts": 101}), "retry.attempts"),
        (spec(retry={"attempts": "many"}), "retry.attempts"),
        (spec(retry={"delay_function": "linear"}), "retry.delay_function"),
        (spec(retry={"delay": [5]}), "retry.delay"),
        (spec(timeout=0), "timeout"),
        (spec(timeout=-1), "timeout"),
        (spec(timeout=30 * 24 * 3600 + 1), "timeout"),
        (spec(timeout=1.5), "timeout"),
        (spec(timeout="an hour"), "timeout"),
        (spec(max_concurrency=-1), "max_concurrency"),
        (spec(max_concurrency="x"), "max_concurrency"),
        (spec(kill_timeout=None), "kill_timeout"),
        (spec(driver="kubernetes"), "driver"),
        (spec(driver="Docker"), "driver"),
    ],
)
def test_wrong_type_or_value_is_reported_at_its_path(doc: Doc, path: str, dump: Callable[[Any], str]) -> None:
    reported_path, message = only_error(dump(doc))
    assert reported_path == path
    assert message


def test_type_errors_say_what_is_wrong() -> None:
    assert error_map(as_json(container(command="python3 train.py"))) == {
        "pod.containers[0].command": "Input should be a valid list"
    }
    assert error_map(as_json(spec(kind="BatchAPI"))) == {"kind": "Input should be 'TaskAPI'"}
    assert error_map(as_json(container(compute={"cpu": [1]})))["pod.containers[0].compute.cpu"].startswith("wrong type")
    assert "greater than or equal to 0" in error_map(as_json(spec(retry={"attempts": -1})))["retry.attempts"]
    message = error_map(as_json(spec(retry={"delay_function": "linear"})))["retry.delay_function"]
    assert "'constant', 'exponential' or 'fibonacci'" in message


def test_limits_that_are_allowed(dump: Callable[[Any], str]) -> None:
    doc = spec(timeout=30 * 24 * 3600, retry={"attempts": 100}, max_concurrency=1000, kill_timeout=0)
    doc["pod"]["containers"] = [
        {"name": f"c{i}", "command": ["x"], "compute": {"gpu": 16 if i == 0 else 0}} for i in range(16)
    ]
    [api] = parse_specs(dump(doc))
    assert len(api.pod.containers) == 16


def test_every_invalid_field_is_reported_at_once(dump: Callable[[Any], str]) -> None:
    doc = {
        "name": "Bad_Name",
        "kind": "TaskAPI",
        "extra": True,
        "pod": {
            "containers": [
                {"name": "main", "command": "echo", "compute": {"cpu": "lots", "mem": "1GB"}},
                {"name": "side car", "command": ["x"], "env": {"1X": "y"}},
            ]
        },
        "retry": {"attempts": -1, "delay": "soon"},
        "timeout": 0,
        "kill_timeout": "-5s",
        "driver": "lxc",
    }
    assert set(error_map(dump(doc))) == {
        "name",
        "extra",
        "pod.containers[0].command",
        "pod.containers[0].compute.cpu",
        "pod.containers[0].compute.mem",
        "pod.containers[1].name",
        "pod.containers[1].env",
        "retry.attempts",
        "retry.delay",
        "timeout",
        "kill_timeout",
        "driver",
    }


# --- quantities and durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("cpu", "lots", "not a CPU quantity"),
        ("cpu", "200M", "not a CPU quantity"),
        ("cpu", "-1", "not a CPU quantity"),
        ("cpu", "0", "more than zero"),
        ("cpu", 0, "more than zero"),
        ("cpu", "0m", "more than zero"),
        ("mem", "1GB", "not a memory quantity"),
        ("mem", "1 Gi", "not a memory quantity"),
        ("mem", "-1Gi", "not a memory quantity"),
        ("mem", "0", "more than zero"),
        ("mem", 0, "more than zero"),
        ("shm", "64mb", "not a memory quantity"),
        ("shm", "0Mi", "more than zero"),
    ],
)
def test_bad_quantities(field: str, value: Any, reason: str, dump: Callable[[Any], str]) -> None:
    path, message = only_error(dump(container(compute={field: value})))
    assert path == f"pod.containers[0].compute.{field}"
    assert reason in message


@pytest.mark.parametrize(
    ("cpu", "millicores"), [("200m", 200), ("1", 1000), (1, 1000), (0.5, 500), ("2.5", 2500), ("100m", 100)]
)
def test_good_cpu_quantities(cpu: Any, millicores: int, dump: Callable[[Any], str]) -> None:
    [api] = parse_specs(dump(container(compute={"cpu": cpu})))
    assert api.pod.containers[0].compute.millicores == millicores


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("kill_timeout", "5 minutes", "not a duration"),
        ("kill_timeout", "1d", "not a duration"),
        ("kill_timeout", "-5s", "not a duration"),
        ("kill_timeout", -1, "negative"),
        ("kill_timeout", "", "not a duration"),
        ("retry.delay", "soon", "not a duration"),
        ("retry.delay", -0.5, "negative"),
        ("retry.max_delay", "1w", "not a duration"),
        ("retry.max_delay", "1h 30m", "not a duration"),
    ],
)
def test_bad_durations(field: str, value: Any, reason: str, dump: Callable[[Any], str]) -> None:
    if field.startswith("retry."):
        doc = spec(retry={field.removeprefix("retry."): value})
    else:
        doc = spec(**{field: value})
    path, message = only_error(dump(doc))
    assert path == field
    assert reason in message


@pytest.mark.parametrize(("value", "seconds"), [("30s", 30), ("1m30s", 90), ("500ms", 0.5), (45, 45), (2.5, 2.5)])
def test_good_durations(value: Any, seconds: float, dump: Callable[[Any], str]) -> None:
    [api] = parse_specs(dump(spec(kill_timeout=value, retry={"delay": value, "max_delay": value})))
    assert api.kill_timeout_seconds == seconds
    assert api.retry.delay_seconds == seconds
    assert api.retry.max_delay_seconds == seconds


# --- names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names(name: str, dump: Callable[[Any], str]) -> None:
    path, message = only_error(dump(spec(name=name)))
    assert path == "name"
    assert "reserved" in message or "not a DNS label" in message  # openapi.json is not even a DNS label


@pytest.mark.parametrize("name", ["v1", "healthz", "readyz", "metrics", "docs"])
def test_reserved_names_say_so(name: str) -> None:
    assert "is reserved" in error_map(as_json(spec(name=name)))["name"]


def test_the_reserved_list_is_the_designed_one() -> None:
    assert {"v1", "healthz", "readyz", "metrics", "openapi.json", "docs"} == RESERVED_NAMES


@pytest.mark.parametrize("endpoint", ["v1", "/v1", "/healthz/", "readyz", "metrics", "openapi.json", "docs"])
def test_reserved_endpoints(endpoint: str, dump: Callable[[Any], str]) -> None:
    path, _ = only_error(dump(spec(networking={"endpoint": endpoint})))
    assert path == "networking.endpoint"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Trainer",
        "TRAINER",
        "my_api",
        "-trainer",
        "trainer-",
        "my.api",
        "my api",
        "a" * 64,
        "trainer/",
        "a/b",
        "../trainer",
        "..",
        ".",
        "trainer/../v1",
        "%2e%2e",
        "trainer?x=1",
        "trainer#x",
        " trainer",
        "trainer ",
        "tab\there",
        "new\nline",
    ],
)
def test_non_dns_names(name: str, dump: Callable[[Any], str]) -> None:
    path, message = only_error(dump(spec(name=name)))
    assert path == "name"
    assert "not a DNS label" in message


@pytest.mark.parametrize(
    "name",
    [
        "tr\u0430iner",  # Cyrillic a
        "h\u0435llo",  # Cyrillic e
        "\u0455erver",  # Cyrillic dze looks like s
        "\uff54rainer",  # fullwidth t
        "trainer\u200b",  # zero-width space
        "\u200dtrainer",  # zero-width joiner
        "tra\u0131ner",  # dotless i
        "caf\u00e9",  # precomposed e-acute
        "cafe\u0301",  # e + combining acute
        "\u0661\u0662",  # Arabic-Indic digits
        "trainer\u2010x",  # Unicode hyphen
        "\u2160",  # Roman numeral one
        "trainer\u00a0",  # no-break space
    ],
)
def test_unicode_look_alikes_are_not_dns_labels(name: str, dump: Callable[[Any], str]) -> None:
    path, message = only_error(dump(spec(name=name)))
    assert path == "name"
    assert "not a DNS label" in message


@pytest.mark.parametrize("name", ["a", "0", "123", "a-b", "a--b", "trainer-v2", "x" * 63, "gpu-spot-1"])
def test_good_names(name: str, dump: Callable[[Any], str]) -> None:
    assert parse_specs(dump(spec(name=name)))[0].name == name


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (container(name="Main"), "pod.containers[0].name"),
        (container(name="../main"), "pod.containers[0].name"),
        (container(name="m\u0430in"), "pod.containers[0].name"),
        (container(name=""), "pod.containers[0].name"),
        (spec(node_groups=["GPU"]), "node_groups[0]"),
        (spec(node_groups=["gpu-spot", "../cpu"]), "node_groups[1]"),
        (spec(node_groups=["gpu_spot"]), "node_groups[0]"),
        (spec(networking={"endpoint": "../trainer"}), "networking.endpoint"),
        (spec(networking={"endpoint": "a/b"}), "networking.endpoint"),
        (spec(networking={"endpoint": "Trainer"}), "networking.endpoint"),
        (spec(networking={"endpoint": "tr\u0430iner"}), "networking.endpoint"),
    ],
)
def test_other_names_are_dns_labels_too(doc: Doc, path: str, dump: Callable[[Any], str]) -> None:
    reported_path, message = only_error(dump(doc))
    assert reported_path == path
    assert "not a DNS label" in message


@pytest.mark.parametrize("field", ["name", "container", "node_group", "endpoint"])
def test_a_trailing_newline_is_not_a_dns_label(field: str) -> None:
    doc = {
        "name": spec(name="trainer\n"),
        "container": container(name="main\n"),
        "node_group": spec(node_groups=["gpu\n"]),
        "endpoint": spec(networking={"endpoint": "trainer\n"}),
    }[field]
    errors_of(as_json(doc))


# --- containers ------------------------------------------------------------------------------------------


def test_duplicate_container_names(dump: Callable[[Any], str]) -> None:
    doc = spec(
        pod={
            "containers": [
                {"name": "main", "command": ["a"]},
                {"name": "side", "command": ["b"]},
                {"name": "main", "command": ["c"]},
                {"name": "side", "command": ["d"]},
            ]
        }
    )
    path, message = only_error(dump(doc))
    assert path == "pod.containers"
    assert "unique" in message
    assert "main" in message
    assert "side" in message


@pytest.mark.parametrize("key", ["1ABC", "MY-VAR", "MY VAR", "", "A=B", "\u00c4"])
def test_bad_env_names(key: str, dump: Callable[[Any], str]) -> None:
    path, message = only_error(dump(container(env={key: "x"})))
    assert path == "pod.containers[0].env"
    assert "not a valid environment variable name" in message


@pytest.mark.parametrize("key", ["TASKAPI_JOB_ID", "TASKAPI_ATTEMPT", "TASKAPI_ANYTHING"])
def test_taskapi_env_prefix_is_reserved(key: str, dump: Callable[[Any], str]) -> None:
    path, message = only_error(dump(container(env={key: "x"})))
    assert path == "pod.containers[0].env"
    assert "reserved" in message


@pytest.mark.parametrize("driver", ["docker", "podman"])
def test_container_drivers_need_an_image(driver: str, dump: Callable[[Any], str]) -> None:
    doc = spec(driver=driver)
    doc["pod"]["containers"].append({"name": "side", "image": "busybox", "command": ["sleep", "1"]})
    path, message = only_error(dump(doc))
    assert "pod.containers[0].image" in f"{path} {message}"
    assert driver in message


@pytest.mark.parametrize("driver", [None, "process"])
def test_process_driver_and_default_need_no_image(driver: str | None, dump: Callable[[Any], str]) -> None:
    doc = spec(driver=driver) if driver else spec()
    assert parse_specs(dump(doc))[0].pod.containers[0].image is None


# --- lists of specs --------------------------------------------------------------------------------------


def test_duplicate_names_in_a_list(dump: Callable[[Any], str]) -> None:
    docs = [spec(name="a"), spec(name="b"), spec(name="a", networking={"endpoint": "a2"})]
    assert errors_of(dump(docs)) == [{"path": "", "message": "two specs share the name 'a'"}]
    # Same name, same default endpoint: both are reported.
    errors = errors_of(dump([spec(name="a"), spec(name="a")]))
    assert {"path": "", "message": "two specs share the name 'a'"} in errors


def test_duplicate_endpoints_in_a_list(dump: Callable[[Any], str]) -> None:
    docs = [spec(name="a", networking={"endpoint": "b"}), spec(name="b")]
    assert errors_of(dump(docs)) == [{"path": "", "message": "two specs share the endpoint 'b'"}]


def test_errors_in_a_list_name_the_spec(dump: Callable[[Any], str]) -> None:
    good = spec(name="good")
    bad = container(command=...)
    bad["name"] = "bad"
    unnamed = spec(name="Not Valid", timeout=0)
    nameless = spec(name=...)
    assert error_map(dump([good, bad, unnamed, nameless, "text"])) == {
        "bad.pod.containers[0].command": "required field is missing",
        "[2].name": "'Not Valid' is not a DNS label: lowercase letters, digits and '-', starting and ending "
        "with a letter or digit, at most 63 characters",
        "[2].timeout": "Input should be greater than 0",
        "[3].name": "required field is missing",
        "[4]": "a Task API spec must be a mapping",
    }


def test_a_list_is_rejected_whole_when_one_spec_is_bad(dump: Callable[[Any], str]) -> None:
    errors = errors_of(dump([spec(name="a"), spec(name="b", driver="lxc")]))
    assert [e["path"] for e in errors] == ["b.driver"]


# --- empty and malformed documents -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "# only a comment\n", "null", "~", "---\n"])
def test_empty_documents(text: str) -> None:
    assert only_error(text) == ("", "the spec is empty")


@pytest.mark.parametrize("text", ["[]", "--- []\n"])
def test_empty_lists(text: str) -> None:
    assert only_error(text) == ("", "the list of specs is empty")


@pytest.mark.parametrize("text", ["trainer", "42", "true", '"trainer"'])
def test_a_scalar_is_not_a_spec(text: str) -> None:
    assert only_error(text) == ("", "a Task API spec must be a mapping")


def test_items_of_a_list_must_be_mappings() -> None:
    assert error_map("[1, [2], null]") == {
        "[0]": "a Task API spec must be a mapping",
        "[1]": "a Task API spec must be a mapping",
        "[2]": "a Task API spec must be a mapping",
    }


@pytest.mark.parametrize(
    "text",
    ["name: [trainer", "name: trainer\n  kind: TaskAPI\n bad", "{name: trainer", "key: 'unclosed", "\t- a"],
)
def test_malformed_text(text: str) -> None:
    path, message = only_error(text)
    assert path == ""
    assert message.startswith("not valid YAML or JSON")


def test_non_utf8_bytes() -> None:
    assert only_error("name: caf\u00e9".encode("latin-1")) == ("", "the spec is not UTF-8 text")


def test_utf8_bytes_are_accepted() -> None:
    assert parse_specs(as_yaml(MINIMAL).encode())[0].name == "trainer"


def test_yaml_tags_are_not_executed() -> None:
    path, message = only_error("!!python/object/apply:os.system ['true']\n")
    assert path == ""
    assert message.startswith("not valid YAML or JSON")


# --- known gaps (reported; flip to XPASS once fixed) -----------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [spec(timeout=True), spec(max_concurrency=True), spec(retry={"attempts": True}), container(compute={"gpu": True})],
)
def test_booleans_are_not_integers(doc: Doc) -> None:
    errors_of(as_json(doc))


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_non_finite_durations(value: str) -> None:
    errors_of(as_yaml(spec(kill_timeout=0)).replace("kill_timeout: 0", f"kill_timeout: {value}"))


def test_env_key_named_like_a_type_keeps_its_path() -> None:
    assert error_map(as_json(container(env={"str": 1}))) == {
        "pod.containers[0].env.str": "Input should be a valid string"
    }


def test_spec_model_is_what_parse_returns() -> None:
    assert all(isinstance(s, TaskAPISpec) for s in parse_specs(as_json([MINIMAL])))
