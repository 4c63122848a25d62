"""Bad input over real HTTP: every error is a 4xx problem body, never a 500, and nothing is lost."""

from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import Gateway, python_spec

API = "errs"


@pytest.fixture(scope="module")
def api(gateway: Gateway) -> str:
    gateway.deploy(python_spec(API, "print('ok')"))
    return API


def assert_problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"]
    assert "Traceback" not in response.text
    return body


def test_malformed_json_is_400(gateway: Gateway, api: str) -> None:
    body = assert_problem(
        gateway("POST", f"/{api}", data=b'{"config": {', headers={"Content-Type": "application/json"}), 400
    )
    assert "JSON" in body["detail"]


@pytest.mark.parametrize(
    "payload, path",
    [
        ({"config": [1, 2]}, "config"),
        ({"config": "text"}, "config"),
        ({"config": {}, "timeout": "soon"}, "timeout"),
        ({"config": {}, "timeout": -5}, "timeout"),
        ({"config": {}, "timeout": True}, "timeout"),
        ({"config": {}, "extra": 1}, "extra"),
        ([1, 2, 3], ""),
        ("just a string", ""),
    ],
)
def test_wrong_shapes_are_422_with_the_field(gateway: Gateway, api: str, payload: object, path: str) -> None:
    body = assert_problem(gateway("POST", f"/{api}", data=json.dumps(payload)), 422)
    assert body["errors"]
    if path:
        assert any(e["path"] == path for e in body["errors"]), body


def test_empty_body_submits_with_defaults(gateway: Gateway, api: str) -> None:
    response = gateway("POST", f"/{api}")
    assert response.status_code == 200, response.text
    assert response.json()["config"] == {}


def test_curl_default_form_content_type_is_read_as_json(gateway: Gateway, api: str) -> None:
    response = gateway(
        "POST", f"/{api}", data='{"config": {"a": 1}}', headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["config"] == {"a": 1}


def test_unsupported_media_type_is_415(gateway: Gateway, api: str) -> None:
    assert_problem(gateway("POST", f"/{api}", data="<xml/>", headers={"Content-Type": "application/xml"}), 415)


def test_oversize_body_is_413_and_names_the_limit(gateway: Gateway, api: str) -> None:
    big = json.dumps({"config": {"blob": "x" * (1024 * 1024 + 10)}})
    body = assert_problem(gateway("POST", f"/{api}", data=big, headers={"Content-Type": "application/json"}), 413)
    assert str(1024 * 1024) in body["detail"]


def test_unknown_api_is_404(gateway: Gateway) -> None:
    assert_problem(gateway("POST", "/no-such-api", json={}), 404)
    assert_problem(gateway("GET", "/no-such-api", params={"jobID": "0123456789abcdef"}), 404)
    assert_problem(gateway("GET", "/v1/apis/no-such-api"), 404)
    assert_problem(gateway("GET", "/v1/apis/no-such-api/tasks"), 404)


def test_unknown_task_is_404(gateway: Gateway, api: str) -> None:
    assert_problem(gateway("GET", f"/{api}", params={"jobID": "0123456789abcdef"}), 404)
    assert_problem(gateway("DELETE", f"/{api}", params={"jobID": "0123456789abcdef"}), 404)
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks/0123456789abcdef"), 404)
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks/0123456789abcdef/logs"), 404)


def test_missing_job_id_is_422(gateway: Gateway, api: str) -> None:
    body = assert_problem(gateway("GET", f"/{api}"), 422)
    assert any("jobID" in e["path"] for e in body["errors"])


@pytest.mark.parametrize(
    "job_id",
    [
        "../../etc/passwd",
        "..%2F..%2Fstate.db",
        "0123456789ABCDEF",
        "０１２３４５６７８９ａｂｃｄｅｆ",
        "' OR 1=1 --",
        "a" * 5000,
    ],
)
def test_path_tricks_in_task_ids_are_404(gateway: Gateway, api: str, job_id: str) -> None:
    assert_problem(gateway("GET", f"/{api}", params={"jobID": job_id}), 404)
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks/{requests.utils.quote(job_id, safe='')}"), 404)


@pytest.mark.parametrize("name", ["..", "%2e%2e", "ｅｒｒｓ", "errs%00", "ERRS", "e\u0301rrs"])
def test_path_tricks_in_api_names_are_404(gateway: Gateway, api: str, name: str) -> None:
    response = gateway("GET", f"/v1/apis/{name}/tasks")
    assert response.status_code in (404, 405), response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_bad_spec_is_422_with_every_field(gateway: Gateway) -> None:
    spec = {
        "kind": "TaskAPI",
        "pod": {"containers": [{"name": "Main", "command": "echo hi"}]},
        "retry": {"attempts": -1},
    }
    body = assert_problem(gateway("PUT", "/v1/apis/bad-spec", json=spec), 422)
    paths = {e["path"] for e in body["errors"]}
    assert {"pod.containers[0].name", "pod.containers[0].command", "retry.attempts"} <= paths


def test_spec_name_must_match_the_url(gateway: Gateway) -> None:
    body = assert_problem(gateway("PUT", "/v1/apis/one", json=python_spec("two", "pass")), 422)
    assert body["errors"][0]["path"] == "name"


@pytest.mark.parametrize("name", ["v1", "healthz", "metrics", "docs", "Upper", "a_b", "x" * 64])
def test_reserved_and_non_dns_names_are_refused(gateway: Gateway, name: str) -> None:
    response = gateway("PUT", f"/v1/apis/{name}", json=python_spec(name, "pass"))
    assert response.status_code in (404, 405, 422), response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_yaml_spec_is_accepted(gateway: Gateway) -> None:
    yaml_text = "kind: TaskAPI\ndriver: process\npod:\n  containers:\n    - name: main\n      command: ['true']\n"
    response = gateway("PUT", "/v1/apis/yaml-api", data=yaml_text, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "yaml-api"


def test_unknown_route_and_method(gateway: Gateway, api: str) -> None:
    assert_problem(gateway("GET", "/v1/nothing/here"), 404)
    body = assert_problem(gateway("PATCH", f"/{api}"), 405)
    assert body["detail"]


def test_missing_and_wrong_key_are_401(gateway: Gateway, api: str) -> None:
    assert_problem(requests.post(f"{gateway.url}/{api}", json={}, timeout=10), 401)
    assert_problem(requests.get(f"{gateway.url}/v1/apis", headers={"Authorization": "Bearer wrong"}, timeout=10), 401)
    assert_problem(requests.get(f"{gateway.url}/v1/apis", headers={"Authorization": "Basic dGVzdA=="}, timeout=10), 401)
    assert requests.get(f"{gateway.url}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{gateway.url}/readyz", timeout=10).status_code == 200


def test_bad_idempotency_key_is_400(gateway: Gateway, api: str) -> None:
    assert_problem(gateway("POST", f"/{api}", json={}, headers={"Idempotency-Key": "x" * 300}), 400)


def test_bad_list_parameters_are_422(gateway: Gateway, api: str) -> None:
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks", params={"status": "bogus"}), 422)
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks", params={"limit": "0"}), 422)
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks", params={"limit": "many"}), 422)
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks", params={"cursor": "not-a-cursor"}), 422)


def test_bad_log_parameters(gateway: Gateway, api: str) -> None:
    task_id = gateway.submit(api)
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks/{task_id}/logs", params={"stream": "stdin"}), 422)
    gateway.wait_final(api, task_id)
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks/{task_id}/logs", params={"attempt": "9"}), 404)


def test_empty_path_segments_are_404_problems_not_redirects(gateway: Gateway, api: str) -> None:
    assert_problem(gateway("GET", f"/v1/apis/{api}/tasks//logs", allow_redirects=False), 404)
