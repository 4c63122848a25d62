"""How a shim runs a task: ``process`` (argv on the host) or ``podman``/``docker`` (containers via their CLI).

OOM detection on this host (podman 4.3, cgroup v1, cgroupfs): ``podman inspect`` reports ``OOMKilled=false``
for a container killed by its memory limit. conmon does see the kernel's OOM event (an eventfd on the
container's ``memory.oom_control``) but writes its ``oom`` marker into its *working directory* instead of
the container's persist directory, where podman looks for it. The container's own memory cgroup is
removed as soon as it exits, so it cannot be read afterwards either. Two signals are therefore used, and
either one is enough:

- the shim runs in the attempt folder, so conmon's ``oom`` marker lands there and is checked;
- the shim creates a memory cgroup it owns, ``/sys/fs/cgroup/memory/taskapi/<task>-<n>``, and runs the
  leading container under it (``--cgroup-parent``, with ``--cgroups no-conmon`` so conmon's memory stays
  out). The owned cgroup outlives the container and its ``memory.max_usage_in_bytes`` is hierarchical: a
  container that died of SIGKILL (exit 137) after its usage reached its limit ran out of memory.

``OOMKilled`` from inspect still counts where the runtime reports it (docker, cgroup v2). For the process
driver with a memory limit the task itself lives in an owned cgroup, whose ``oom_kill`` counter is exact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from gateway.spec import Container, TaskAPISpec

from .layout import JOB_FILE, attempt_dir

CONTAINER_JOB_FILE = "/cortex/spec/job.json"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CLI_TIMEOUT = 60


@dataclass(frozen=True)
class Launch:
    """Everything a shim needs to run one attempt."""

    state_dir: Path
    task_id: str
    api_name: str
    n: int
    spec: TaskAPISpec
    driver: str
    global_args: tuple[str, ...] = ()
    run_args: tuple[str, ...] = ()

    @property
    def dir(self) -> Path:
        """The attempt folder."""
        return attempt_dir(self.state_dir, self.task_id, self.n)

    @property
    def name(self) -> str:
        """The attempt's name in runtimes and cgroups."""
        return f"taskapi-{self.task_id}-{self.n}"

    def env(self, container: Container, job_file: str) -> dict[str, str]:
        """The variables a task sees besides its inherited environment (DESIGN section 4)."""
        return {
            **container.env,
            "TASKAPI_JOB_ID": self.task_id,
            "TASKAPI_API_NAME": self.api_name,
            "TASKAPI_ATTEMPT": str(self.n),
            "TASKAPI_JOB_FILE": job_file,
        }


@dataclass(frozen=True)
class ExitStatus:
    """How a task ended."""

    exit_code: int | None
    signal: int | None
    oom: bool
    message: str | None = None
    platform_error: bool = False


class Driver(Protocol):
    """What a shim does with a task."""

    def start(self, stdout: IO[bytes], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start the task; the returned process ends when the task does."""

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the task; False if it could not be delivered yet."""

    def finish(self, returncode: int) -> ExitStatus:
        """Collect the exit status once the process from ``start`` ended, and clean up."""

    def leftovers(self) -> dict[str, Any]:
        """What to remove if the shim dies (written to task.json for the runner)."""


class MemoryCgroup:
    """A cgroup v1 memory cgroup under ``taskapi/`` owned by one attempt."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = CGROUP_ROOT / "memory" / "taskapi" / name

    @classmethod
    def create(cls, name: str) -> MemoryCgroup | None:
        """Create it; None where cgroup v1 memory is absent or not writable (cgroup v2, rootless)."""
        if not (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists():
            return None
        cgroup = cls(name)
        try:
            cgroup.path.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return cgroup

    def _read(self, name: str) -> str:
        return (self.path / name).read_text()

    def set_limit(self, limit: int) -> None:
        """Cap memory (and memory+swap where accounted, so the task cannot swap past it)."""
        (self.path / "memory.limit_in_bytes").write_text(str(limit))
        with contextlib.suppress(OSError):
            (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))

    def max_usage(self) -> int:
        """Peak memory use of the cgroup and its children."""
        return int(self._read("memory.max_usage_in_bytes"))

    def oom_kills(self) -> int:
        """Processes of this very cgroup killed by the OOM killer."""
        for line in self._read("memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0


def remove_cgroups(name: str) -> None:
    """Remove ``taskapi/<name>`` (and any children) in every cgroup v1 controller; errors are ignored."""
    for controller in CGROUP_ROOT.glob("*/taskapi"):
        folder = controller / name
        if folder.is_dir():
            for child in sorted(folder.glob("*/"), reverse=True):
                with contextlib.suppress(OSError):
                    child.rmdir()
            with contextlib.suppress(OSError):
                folder.rmdir()


def _host_env() -> dict[str, str]:
    # The runner's own TASKAPI_* settings (API keys among them) are not the task's business.
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKAPI_")}


class ProcessDriver:
    """The argv on the host in its own process group, cwd the attempt folder; the image is ignored."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self.container = launch.spec.pod.containers[0]
        self.pgid: int | None = None
        limit = self.container.compute.memory_bytes
        self.cgroup = MemoryCgroup.create(launch.name) if limit else None
        if self.cgroup and limit:
            self.cgroup.set_limit(limit)

    def _enter_cgroup(self) -> None:
        # Runs in the child between fork and exec, so the task is limited from its first allocation.
        if self.cgroup:
            (self.cgroup.path / "cgroup.procs").write_text(str(os.getpid()))

    def start(self, stdout: IO[bytes], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start the argv with stdout/stderr in the attempt folder."""
        job_file = str(self.launch.dir / JOB_FILE)
        proc = subprocess.Popen(
            self.container.argv,
            cwd=self.launch.dir,
            env={**_host_env(), **self.launch.env(self.container, job_file)},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            # preexec_fn is safe here: the shim is single-threaded.
            preexec_fn=self._enter_cgroup if self.cgroup else None,
        )
        self.pgid = proc.pid
        return proc

    def signal(self, sig: signal.Signals) -> bool:
        """Signal the whole process group."""
        if self.pgid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)
        return True

    def finish(self, returncode: int) -> ExitStatus:
        """The exit status; whatever the task left in its process group is killed."""
        self.signal(signal.SIGKILL)
        oom = False
        if self.cgroup:
            oom = self.cgroup.oom_kills() > 0
            remove_cgroups(self.cgroup.name)
        if returncode < 0:
            return ExitStatus(128 - returncode, -returncode, oom)
        return ExitStatus(returncode, None, oom)

    def leftovers(self) -> dict[str, Any]:
        """The process group to kill."""
        return {"driver": "process", "pgid": self.pgid, "cgroup": self.launch.name}


class ContainerDriver:
    """Containers through the podman or docker CLI.

    The first container leads: the task ends when it exits, and the others (started detached, on their
    own network namespace) are removed then.
    """

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self.runtime = launch.driver
        self.cli = [self.runtime, *launch.global_args]
        containers = launch.spec.pod.containers
        self.names = [launch.name] + [f"{launch.name}-{c.name}" for c in containers[1:]]
        limit = containers[0].compute.memory_bytes
        # See the module docstring: the owned cgroup is how OOM is told apart under podman on cgroup v1.
        self.cgroup = MemoryCgroup.create(launch.name) if self.runtime == "podman" and limit else None

    def _run_args(self, container: Container, name: str, lead: bool) -> list[str]:
        compute = container.compute
        args = [*self.cli, "run", "--name", name, *self.launch.run_args]
        if not lead:
            args.append("--detach")
        if lead and self.cgroup:
            args += ["--cgroups", "no-conmon", "--cgroup-parent", f"/taskapi/{self.cgroup.name}"]
        if compute.memory_bytes:
            # Equal swap limit: a task over its memory must be OOM-killed, not swapped.
            args += ["--memory", str(compute.memory_bytes), "--memory-swap", str(compute.memory_bytes)]
        args += ["--cpus", f"{compute.millicores / 1000:g}"]
        if compute.shm_bytes:
            args += ["--shm-size", str(compute.shm_bytes)]
        if compute.gpu:
            args += ["--gpus", str(compute.gpu)] if self.runtime == "docker" else ["--device", "nvidia.com/gpu=all"]
        for key, value in self.launch.env(container, CONTAINER_JOB_FILE).items():
            args += ["--env", f"{key}={value}"]
        args += ["--volume", f"{self.launch.dir / JOB_FILE}:{CONTAINER_JOB_FILE}:ro"]
        return [*args, str(container.image), *container.argv]

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.cli, *args],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def start(self, stdout: IO[bytes], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start the other containers detached, then the leader attached to the attempt's log files."""
        containers = self.launch.spec.pod.containers
        for container, name in zip(containers[1:], self.names[1:], strict=True):
            subprocess.run(
                self._run_args(container, name, lead=False),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                timeout=CLI_TIMEOUT,
                check=False,
            )
        return subprocess.Popen(
            self._run_args(containers[0], self.names[0], lead=True),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )

    def signal(self, sig: signal.Signals) -> bool:
        """``<runtime> kill --signal``; False while the container does not exist yet."""
        return self._cli("kill", "--signal", sig.name.removeprefix("SIG"), self.names[0]).returncode == 0

    def finish(self, returncode: int) -> ExitStatus:
        """Exit code and OOM from the runtime (and the owned cgroup), then remove the containers."""
        inspected = self._cli("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", self.names[0])
        for container, name in zip(self.launch.spec.pod.containers[1:], self.names[1:], strict=True):
            with open(self.launch.dir / f"{container.name}.log", "wb") as log:
                subprocess.run(
                    [*self.cli, "logs", name],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=CLI_TIMEOUT,
                    check=False,
                )
        # Read before removal: the owned cgroup's peak usage is the OOM evidence.
        peak = self.cgroup.max_usage() if self.cgroup else 0
        self.remove()
        if self.cgroup:
            remove_cgroups(self.cgroup.name)
        if inspected.returncode != 0:
            message = f"the container did not start ({self.runtime} exited with {returncode}); see stderr"
            # The runtime itself failed (an image that cannot be pulled, a bad mount): not the task's fault.
            return ExitStatus(returncode, None, False, message, platform_error=True)
        code_text, oom_text = inspected.stdout.split()
        exit_code = int(code_text)
        limit = self.launch.spec.pod.containers[0].compute.memory_bytes
        killed = exit_code == 128 + signal.SIGKILL
        conmon_marker = (self.launch.dir / "oom").exists()
        oom = oom_text == "true" or conmon_marker or (killed and limit is not None and peak >= limit)
        return ExitStatus(exit_code, exit_code - 128 if exit_code > 128 else None, oom)

    def remove(self) -> None:
        """Force-remove every container of the attempt."""
        extra = ["--time", "0"] if self.runtime == "podman" else []
        self._cli("rm", "--force", *extra, *self.names)

    def leftovers(self) -> dict[str, Any]:
        """The containers to remove."""
        return {"driver": self.runtime, "cli": self.cli, "names": self.names, "cgroup": self.launch.name}


def make_driver(launch: Launch) -> Driver:
    """The driver ``launch`` names."""
    if launch.driver == "process":
        return ProcessDriver(launch)
    return ContainerDriver(launch)


def clean_leftovers(leftovers: dict[str, Any]) -> None:
    """Kill what a dead shim left running (its process group or containers)."""
    if leftovers.get("driver") == "process":
        if leftovers.get("pgid"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(leftovers["pgid"], signal.SIGKILL)
    elif leftovers.get("names"):
        extra = ["--time", "0"] if leftovers["driver"] == "podman" else []
        subprocess.run(
            [*leftovers["cli"], "rm", "--force", *extra, *leftovers["names"]],
            capture_output=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
    if leftovers.get("cgroup"):
        remove_cgroups(leftovers["cgroup"])


def runtime_problem(runtime: str, global_args: list[str]) -> str | None:
    """Why ``runtime`` cannot run containers here, or None if it can."""
    if not shutil.which(runtime):
        return f"{runtime} is not installed on this host"
    if runtime == "docker":
        try:
            info = subprocess.run(
                ["docker", *global_args, "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=15,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "the docker daemon does not answer"
        if info.returncode != 0:
            return f"the docker daemon is not reachable: {info.stderr.strip()[:200]}"
    return None
