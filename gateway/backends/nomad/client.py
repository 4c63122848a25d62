"""The Nomad HTTP API as the backend uses it: python-nomad underneath, Nomad's errors mapped to the port's.

Every call goes through :class:`NomadClient`; a connection failure or a 5xx becomes ``Unavailable`` (503), an
unknown object ``NotFound``. Nothing else in the package talks to python-nomad.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import nomad
import requests
from nomad.api.exceptions import BaseNomadException, URLNotFoundNomadException

from gateway.backends.base import BackendError, NotFound, Unavailable
from gateway.config import Settings

log = logging.getLogger("taskapi.nomad")

# Seconds for one ordinary API call; log streams only bound the connection, not the reading.
CALL_TIMEOUT = 10
CONNECT_TIMEOUT = 5
# A filter names at most this many jobs (the query string stays a few KiB).
FILTER_CHUNK = 50


class NomadRefused(BackendError):
    """Nomad answered a write with an error that is about the request (its message is kept as the detail)."""

    status = 422
    title = "Nomad refused the request"


def _message(exc: BaseNomadException) -> str:
    """Nomad's own message (errors are text/plain bodies), or the connection error."""
    response = getattr(exc, "nomad_resp", None)
    if isinstance(response, requests.Response):
        text = response.text.strip()
        return f"{response.status_code} {text}" if text else str(response.status_code)
    return str(response or exc)


def jobs_filter(job_ids: list[str]) -> str:
    """A go-bexpr filter matching these job IDs."""
    return " or ".join(f"JobID == {json.dumps(i)}" for i in job_ids)


def _status(exc: BaseNomadException) -> int | None:
    response = getattr(exc, "nomad_resp", None)
    return response.status_code if isinstance(response, requests.Response) else None


class NomadClient:
    """A thin, typed face of the Nomad endpoints the backend needs (thread-safe: one session per thread)."""

    def __init__(self, settings: Settings) -> None:
        self.address = settings.nomad_addr.rstrip("/")
        self.namespace = settings.nomad_namespace or "default"
        verify: bool | str = True
        if settings.nomad_skip_verify:
            verify = False
        elif settings.nomad_cacert:
            verify = str(settings.nomad_cacert)
        cert: tuple[str, str] | tuple[()] = ()
        if settings.nomad_client_cert and settings.nomad_client_key:
            cert = (str(settings.nomad_client_cert), str(settings.nomad_client_key))
        self.api = nomad.Nomad(
            address=self.address,
            token=settings.nomad_token or None,
            namespace=self.namespace,
            region=settings.nomad_region or None,
            timeout=CALL_TIMEOUT,
            verify=verify,  # type: ignore[arg-type]  # requests takes a CA bundle path here too
            cert=cert,
        )

    # --- error mapping ----------------------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *args: Any, not_found: str | None = None, **kwargs: Any) -> Any:
        """Run one python-nomad call; map its failures to the port's errors."""
        try:
            return fn(*args, **kwargs)
        except URLNotFoundNomadException as exc:
            if not_found is not None:
                raise NotFound(not_found) from None
            raise Unavailable(f"Nomad at {self.address} could not {what}: {_message(exc)}") from None
        except BaseNomadException as exc:
            status = _status(exc)
            if status == 400:
                raise NomadRefused(f"Nomad refused to {what}: {_message(exc)}") from None
            if status == 403:
                raise Unavailable(
                    f"Nomad at {self.address} denied permission to {what} (check NOMAD_TOKEN): {_message(exc)}"
                ) from None
            raise Unavailable(f"Nomad at {self.address} could not {what}: {_message(exc)}") from None
        except (requests.RequestException, ValueError) as exc:
            # ValueError: a body that is not JSON (a proxy's error page, a cut connection).
            raise Unavailable(f"Nomad at {self.address} could not {what}: {exc}") from None

    # --- jobs --------------------------------------------------------------------------------------------

    def register(self, job: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/jobs``: create or update a job."""
        return dict(self._call(f"register the job {job['ID']}", self.api.jobs.register_job, {"Job": job}))

    def job(self, job_id: str, missing: str) -> dict[str, Any]:
        """``GET /v1/job/<id>``; NotFound(``missing``) if there is none."""
        return dict(self._call(f"read the job {job_id}", self.api.job.get_job, job_id, not_found=missing))

    def list_jobs(
        self, prefix: str, filter_: str | None = None, per_page: int | None = None, next_token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """``GET /v1/jobs?prefix=&meta=true``: job stubs (with Meta and JobSummary) and the next page's token."""
        params = {"prefix": prefix, "meta": "true", "filter": filter_, "per_page": per_page, "next_token": next_token}
        params = {k: v for k, v in params.items() if v is not None}
        response = self._call(f"list the jobs {prefix}*", self.api.jobs.request, method="get", params=params)
        jobs = self._call(f"list the jobs {prefix}*", response.json)
        return list(jobs or []), response.headers.get("X-Nomad-NextToken") or None

    def wait_jobs(self, prefix: str, index: int, wait: str) -> tuple[list[dict[str, Any]], int]:
        """A blocking ``GET /v1/jobs?prefix=&meta=true&index=&wait=``: every stub and the new ``X-Nomad-Index``."""
        params = {"prefix": prefix, "meta": "true", "index": index, "wait": wait}
        response = self._call(
            f"watch the jobs {prefix}*", self.api.jobs.request, method="get", params=params, timeout=CALL_TIMEOUT + 600
        )
        jobs = self._call(f"watch the jobs {prefix}*", response.json)
        return list(jobs or []), int(response.headers.get("X-Nomad-Index") or 0)

    def stop_times(self, job_ids: list[str]) -> dict[str, float]:
        """When each job was last stopped (its newest ``job-deregister`` evaluation): one call per 50 jobs."""
        times: dict[str, float] = {}
        for start in range(0, len(job_ids), FILTER_CHUNK):
            jobs = jobs_filter(job_ids[start : start + FILTER_CHUNK])
            params = {"filter": f'TriggeredBy == "job-deregister" and ({jobs})', "namespace": self.namespace}
            response = self._call("list evaluations", self.api.evaluations.request, method="get", params=params)
            for evaluation in self._call("list evaluations", response.json) or []:
                moment = int(evaluation.get("CreateTime") or 0) / 1e9
                times[evaluation["JobID"]] = max(times.get(evaluation["JobID"], 0.0), moment)
        return times

    def allocations(self, job_id: str) -> list[dict[str, Any]]:
        """``GET /v1/job/<id>/allocations`` (stubs with TaskStates); [] for a job Nomad has forgotten."""
        return list(self._call(f"list the allocations of {job_id}", self.api.job.get_allocations, job_id) or [])

    def wait_allocations(self, job_id: str, index: int, wait: str) -> tuple[list[dict[str, Any]], int]:
        """A blocking ``GET /v1/job/<id>/allocations?index=&wait=``: the stubs and the new ``X-Nomad-Index``."""
        response = self._call(
            f"watch the allocations of {job_id}",
            self.api.job.request,
            job_id,
            "allocations",
            method="get",
            params={"index": index, "wait": wait},
            timeout=CALL_TIMEOUT + 300,
        )
        return list(response.json() or []), int(response.headers.get("X-Nomad-Index") or 0)

    def allocations_matching(self, filter_: str) -> list[dict[str, Any]]:
        """``GET /v1/allocations?filter=``: allocation stubs (with TaskStates) of many jobs in one call."""
        response = self._call(
            "list allocations", self.api.allocations.request, method="get", params={"filter": filter_}
        )
        return list(self._call("list allocations", response.json) or [])

    def stop(self, job_id: str, purge: bool = False) -> None:
        """``DELETE /v1/job/<id>``: stop a job (and forget it with ``purge``)."""
        self._call(f"stop the job {job_id}", self.api.job.deregister_job, job_id, purge=purge)

    def dispatch(self, parent: str, body: dict[str, Any], idempotency_token: str | None) -> dict[str, Any]:
        """``POST /v1/job/<parent>/dispatch``, the idempotency token as the query parameter Nomad reads."""
        params = {"idempotency_token": idempotency_token} if idempotency_token else {}
        try:
            response = self.api.job.request(parent, "dispatch", params=params, json=body, method="post")
            return dict(response.json())
        except BaseNomadException as exc:
            message = _message(exc)
            # Nomad answers dispatch errors with a 500; a missing or stopped parent means the API is gone.
            if "not found" in message or "is stopped" in message:
                raise NotFound(f"the Task API's Nomad job {parent} is gone: {message}") from None
            raise Unavailable(f"Nomad at {self.address} could not dispatch {parent}: {message}") from None
        except (requests.RequestException, ValueError) as exc:
            raise Unavailable(f"Nomad at {self.address} could not dispatch {parent}: {exc}") from None

    # --- logs and health ---------------------------------------------------------------------------------

    def stream_logs(self, alloc_id: str, task: str, stream: str, follow: bool) -> Iterator[bytes]:
        """``GET /v1/client/fs/logs/<alloc>?plain=true``, streamed as it arrives (until the task ends with follow)."""
        params = {
            "task": task,
            "type": stream,
            "plain": "true",
            "follow": "true" if follow else "false",
            "origin": "start",
            "offset": 0,
        }
        response = self._call(
            f"read the logs of allocation {alloc_id}",
            self.api.client.stream_logs.request,
            alloc_id,
            method="get",
            params=params,
            stream=True,
            timeout=(CONNECT_TIMEOUT, None),
            not_found=f"the logs of allocation {alloc_id} are gone",
        )
        return self._chunks(response, alloc_id)

    def _chunks(self, response: requests.Response, alloc_id: str) -> Iterator[bytes]:
        # An empty first chunk makes the WSGI server send the headers now, before any log line exists.
        yield b""
        try:
            yield from response.iter_content(chunk_size=None)
        except requests.RequestException as exc:
            # The stream is already flowing: end it rather than fail the whole response.
            log.warning("log stream of allocation %s ended early: %s", alloc_id, exc)
        finally:
            response.close()

    def leader(self) -> str:
        """``GET /v1/status/leader``: the raft leader's address ("" when the cluster has none)."""
        return str(self._call("name its leader", self.api.status.leader.get_leader))
