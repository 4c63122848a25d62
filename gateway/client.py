"""Python SDK of the Task API gateway (the HTTP contract of DESIGN section 3).

``TaskAPIClient`` wraps one ``requests.Session``. Every failure surfaces as ``TaskAPIError``: the gateway's
RFC 9457 problems, specs rejected locally before anything is sent, and a gateway that cannot be reached.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import requests

from gateway import __version__
from gateway.profile import load_profile
from gateway.spec import SpecError, load_documents, parse_specs
from gateway.task_states import IN_PROGRESS

DEFAULT_URL = "http://127.0.0.1:8080"


class TaskAPIError(Exception):
    """A request that failed; built from an RFC 9457 problem when the gateway sent one.

    ``status`` is the HTTP status, or None when the request never got an answer (or was not sent).
    ``errors`` lists ``{"path", "message"}`` for each invalid field.
    """

    def __init__(
        self,
        status: int | None,
        title: str,
        detail: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        super().__init__(f"{title}: {detail}" if detail else title)


class GatewayUnreachable(TaskAPIError):
    """The gateway did not answer: refused connection, unknown host, timeout."""


def load_spec_documents(spec_text: str | bytes, content_type: str | None = None) -> list[dict[str, Any]]:
    """The spec documents of YAML or JSON text, validated locally; TaskAPIError (no status) if invalid.

    With a JSON ``content_type`` the text must be JSON: a broken JSON file would otherwise be reported with
    YAML's error message, which points at the wrong thing.
    """
    try:
        if content_type and "json" in content_type.lower():
            try:
                json.loads(spec_text)
            except ValueError as exc:
                raise SpecError([{"path": "", "message": f"not valid JSON: {exc}"}]) from None
        parse_specs(spec_text)
        # The validated specs carry every default; send the documents as written so that the gateway, which
        # validates again, applies its own defaults.
        return load_documents(spec_text)
    except SpecError as exc:
        count = len(exc.errors)
        detail = f"{count} problem{'s' if count != 1 else ''}; nothing was sent to the gateway"
        raise TaskAPIError(None, "Invalid spec", detail, exc.errors) from None


def _segment(value: str) -> str:
    return quote(value, safe="")


class TaskAPIClient:
    """A client of one gateway.

    ``url`` defaults to ``$TASKAPI_URL``, else the gateway saved by ``taskapi cluster up``, else
    ``http://127.0.0.1:8080``; ``api_key`` to ``$TASKAPI_API_KEY``, else the saved key when the saved gateway
    is the one used. ``timeout`` is the seconds to wait for an answer to any one request.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30) -> None:
        profile = load_profile()
        self.url = (url or os.environ.get("TASKAPI_URL") or profile.get("url") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"taskapi-client/{__version__}"
        # The saved key goes only to the saved gateway, never to another URL given by flag or environment.
        saved_key = profile.get("api_key") if profile.get("url", "").rstrip("/") == self.url else None
        api_key = api_key or os.environ.get("TASKAPI_API_KEY") or saved_key
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        # API name -> endpoint path segment; an API's endpoint only changes when it is redeployed.
        self._endpoints: dict[str, str] = {}

    # Transport.

    def _request(
        self,
        method: str,
        path: str,
        *,
        stream: bool = False,
        timeout: tuple[float, float | None] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        url = f"{self.url}{path}"
        timeout = timeout or (self.timeout, self.timeout)
        try:
            response = self.session.request(method, url, stream=stream, timeout=timeout, **kwargs)
        except requests.Timeout:
            raise GatewayUnreachable(
                None, f"the gateway at {self.url} did not answer within {self.timeout:g}s"
            ) from None
        except requests.ConnectionError as exc:
            raise GatewayUnreachable(None, f"cannot reach the gateway at {self.url}", _reason(exc)) from None
        if not response.ok:
            raise _problem(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise TaskAPIError(
                response.status_code,
                "Unexpected answer",
                f"{method} {path} did not answer JSON; is {self.url} a Task API gateway?",
            ) from None

    # Task APIs.

    def put_api(self, document: dict[str, Any]) -> dict[str, Any]:
        """Create or update the Task API of one spec document (a dict); returns its ApiInfo."""
        info = self._json("PUT", f"/v1/apis/{_segment(str(document.get('name', '')))}", json=document)
        self._endpoints.pop(info.get("name", ""), None)
        return info

    def deploy(self, spec_text: str | bytes, content_type: str | None = None) -> list[dict[str, Any]]:
        """Deploy every spec in YAML or JSON text (one spec or a list); returns their ApiInfo, in order.

        All specs are validated locally first, so an invalid file deploys nothing.
        """
        return [self.put_api(document) for document in load_spec_documents(spec_text, content_type)]

    def list_apis(self) -> list[dict[str, Any]]:
        """Every deployed Task API (ApiInfo dicts), by name."""
        return self._json("GET", "/v1/apis")["apis"]

    def get_api(self, name: str) -> dict[str, Any]:
        """One Task API (ApiInfo dict)."""
        info = self._json("GET", f"/v1/apis/{_segment(name)}")
        self._endpoints[name] = _endpoint_segment(info["endpoint"])
        return info

    def delete_api(self, name: str) -> dict[str, Any]:
        """Remove a Task API (its tasks in progress are stopped); returns the gateway's answer, if any."""
        self._endpoints.pop(name, None)
        return self._json("DELETE", f"/v1/apis/{_segment(name)}")

    # Tasks.

    def _endpoint(self, api: str) -> str:
        if api not in self._endpoints:
            self.get_api(api)
        return self._endpoints[api]

    def _on_endpoint(self, api: str, method: str, **kwargs: Any) -> Any:
        endpoint = self._endpoint(api)
        try:
            return self._json(method, f"/{_segment(endpoint)}", **kwargs)
        except TaskAPIError as exc:
            if exc.status != 404:
                raise
            # The cached endpoint may have been moved by a redeploy: look the API up again (which fails
            # clearly if it is gone) and retry once if it did move.
            self.get_api(api)
            if self._endpoints[api] == endpoint:
                raise
        return self._json(method, f"/{_segment(self._endpoints[api])}", **kwargs)

    def submit(
        self,
        api: str,
        config: dict[str, Any] | None = None,
        timeout: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start a task; returns its record (``job_id``, ``config``, ``timeout``, ``start_time``...).

        ``timeout`` overrides the API's (seconds from submission). With ``idempotency_key``, submitting the
        same body again returns the same task instead of starting another.
        """
        body: dict[str, Any] = {"config": config or {}}
        if timeout is not None:
            body["timeout"] = timeout
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._on_endpoint(api, "POST", json=body, headers=headers)

    def get_task(self, api: str, task_id: str) -> dict[str, Any]:
        """A task's status with its attempts (the ``job_status`` object)."""
        return self._json("GET", f"/v1/apis/{_segment(api)}/tasks/{_segment(task_id)}")

    def list_tasks(
        self, api: str, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of an API's tasks, newest first, and the cursor of the next page (None at the end)."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        page = self._json("GET", f"/v1/apis/{_segment(api)}/tasks", params=params)
        return page["tasks"], page.get("next_cursor")

    def iter_tasks(self, api: str, status: str | None = None, page_size: int = 50) -> Iterator[dict[str, Any]]:
        """Every task of an API, newest first, fetching pages as they are consumed."""
        cursor = None
        while True:
            tasks, cursor = self.list_tasks(api, status, page_size, cursor)
            yield from tasks
            if not cursor:
                return

    def stop(self, api: str, task_id: str) -> dict[str, Any]:
        """Stop a task in progress (409 if it already ended); returns ``{"message": ...}``."""
        return self._on_endpoint(api, "DELETE", params={"jobID": task_id})

    def logs(
        self,
        api: str,
        task_id: str,
        stream: str = "stdout",
        attempt: int | None = None,
        follow: bool = False,
    ) -> Iterator[bytes]:
        """An attempt's output as chunks of bytes, yielded as they arrive (default: the latest attempt).

        With ``follow`` the iterator lasts until the attempt ends. Errors (an unknown task...) are raised
        by this call, before iteration starts.
        """
        params: dict[str, Any] = {"stream": stream}
        if attempt is not None:
            params["attempt"] = attempt
        if follow:
            params["follow"] = "true"
        response = self._request(
            "GET",
            f"/v1/apis/{_segment(api)}/tasks/{_segment(task_id)}/logs",
            params=params,
            stream=True,
            # A followed task may print nothing for hours; only the connection is bounded.
            timeout=(self.timeout, None) if follow else None,
        )
        return self._chunks(response)

    def _chunks(self, response: requests.Response) -> Iterator[bytes]:
        with response:
            try:
                # chunk_size=None hands over each piece as the network delivers it, not in fixed blocks.
                yield from response.iter_content(chunk_size=None)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise GatewayUnreachable(
                    None, f"lost the connection to the gateway at {self.url}", _reason(exc)
                ) from None

    def wait(
        self,
        api: str,
        task_id: str,
        timeout: float | None = None,
        poll: float = 0.5,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a task until it ends; returns its final status (``job_status``).

        ``on_update`` gets every status read, including the final one. Raises ``TimeoutError`` if the task
        is still in progress after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.get_task(api, task_id)
            if on_update:
                on_update(status)
            if status["status"] not in IN_PROGRESS:
                return status
            if deadline is not None and time.monotonic() + poll > deadline:
                raise TimeoutError(f"task {task_id} is still {status['status']} after {timeout:g}s")
            time.sleep(poll)


def _endpoint_segment(endpoint: str) -> str:
    # Endpoints are single DNS labels; the gateway may report one bare, with a slash, or as a full URL.
    return endpoint.rstrip("/").rsplit("/", 1)[-1]


def _reason(exc: Exception) -> str:
    # requests nests the OS error several levels deep (MaxRetryError, NewConnectionError...); its own text,
    # "Connection refused" or "Name or service not known", is the useful part.
    inner: BaseException | None = exc
    for _ in range(8):
        if inner is None:
            break
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
        reason = getattr(inner, "reason", None)
        if isinstance(reason, BaseException):
            inner = reason
        elif inner.args and isinstance(inner.args[0], BaseException):
            inner = inner.args[0]
        else:
            inner = inner.__cause__
    return str(exc)


def _problem(response: requests.Response) -> TaskAPIError:
    body: Any = None
    if "json" in response.headers.get("Content-Type", ""):
        try:
            body = response.json()
        except ValueError:
            body = None
    if isinstance(body, dict) and "title" in body:
        errors = body.get("errors") if isinstance(body.get("errors"), list) else None
        return TaskAPIError(response.status_code, str(body["title"]), body.get("detail"), errors)
    # A proxy's or another server's HTML page says nothing useful; a plain text answer may.
    plain = response.headers.get("Content-Type", "").startswith("text/plain")
    detail = response.text.strip()[:500] if plain else ""
    return TaskAPIError(
        response.status_code,
        f"HTTP {response.status_code} {response.reason or ''}".strip(),
        detail or None,
    )
