"""Running the test process under limits: the interpreter, namespaces, rlimits, output, timeout, kill.

Holds :func:`find_python` (the user's interpreter), :func:`namespace_prefix`
(the ``unshare`` command for PID and network namespaces, where this machine
allows them without root), :func:`user_tasks` and :func:`limit_setter` (the
``RLIMIT_*`` values, set in ``preexec_fn``), :func:`supervise` (reading both
pipes with a cap, the wall-clock timeout and cancellation, reaping with
``wait4``), :class:`Finished` (how the process ended) and :func:`kill_group`.
Apart from the shadow copy and the results because it is the part that talks
to the kernel; it takes plain numbers, not
:class:`~model_runtime.sandbox.runner.SandboxLimits`, whose fields the runner
passes in. Which limit is enforced where is the table in
:mod:`model_runtime.sandbox.runner`.

``preexec_fn`` runs in the forked child before ``exec``; it only calls
``setrlimit``, which takes no Python lock, so it is safe while other threads
(model generation) run. ``RLIMIT_NPROC`` counts *all* tasks (threads too) of
the real user id, so the limit is the user's current count (:func:`user_tasks`)
plus what the run may add.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from model_runtime.sandbox.errors import SandboxError

__all__ = [
    "Finished",
    "bwrap_available",
    "bwrap_prefix",
    "find_python",
    "kill_group",
    "limit_setter",
    "namespace_prefix",
    "pids_cgroup",
    "resolve_python",
    "supervise",
    "user_tasks",
]

_POLL_S = 0.05
_WATCH_S = 0.5


# --------------------------------------------------------------------------- interpreter


def find_python(workspace: str | os.PathLike[str], python: str | None = None) -> str:
    """The interpreter to test with: ``python`` if given, else the workspace's virtualenv, else PATH's.

    The user's tests import the user's dependencies, which live in the user's
    environment, not ours.
    """
    root = Path(workspace)
    if python:
        found = shutil.which(python, path=os.environ.get("PATH")) if os.sep not in python else python
        if not found or not os.access(found, os.X_OK):
            raise SandboxError(f"interpreter not found or not executable: {python}")
        return str(found)
    for venv in (".venv", "venv"):
        candidate = root / venv / "bin" / "python"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found:
            return found
    raise SandboxError("no Python interpreter: no .venv/venv in the workspace and none on PATH")


#: Variables a version manager's shim (pyenv, asdf) reads or sets; never passed to the tests.
SHIM_VARIABLES = ("PYENV_", "ASDF_")


@functools.cache
def resolve_python(python: str, cwd: str) -> str:
    """The real executable behind ``python`` as run from ``cwd``: a pyenv shim is a shell script that
    picks a version (by ``.python-version`` files from ``cwd`` up) on *every* start (~76 ms here) and
    adds ``PYENV_*`` variables; the interpreter it picks is asked once for ``sys.executable``.

    A virtualenv's ``bin/python`` answers with itself (the link is what makes it that virtualenv),
    so it is kept as it is. Where the question cannot be answered, ``python`` is kept: the run then
    says why it did not start.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    try:
        done = subprocess.run([python, "-I", "-S", "-c", "import sys; print(sys.executable)"], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return python
    found = done.stdout.strip()
    if done.returncode != 0 or not found.startswith("/") or not os.access(found, os.X_OK):
        return python
    if os.path.realpath(found) == os.path.realpath(python):
        return python
    return found


# --------------------------------------------------------------------------- process limits


@functools.cache
def namespace_prefix(network: bool) -> tuple[str, ...]:
    """The ``unshare`` command that works here without root, or ``()``; probed once per process."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    wanted = ["--pid", "--fork", "--kill-child"] + ([] if network else ["--net"])
    for user in (["--user", "--map-root-user"], []):
        prefix = (unshare, *user, *wanted, "--")
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    return ()


@functools.cache
def _bwrap() -> str | None:
    """bubblewrap's path when it is installed and can make its namespaces here (probed once)."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return None
    probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
             "--unshare-all", "--die-with-parent", "--new-session", "--", "true"]
    try:
        return bwrap if subprocess.run(probe, capture_output=True, timeout=10).returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


_IMPORT_PATHS = r"""
import json, site, sys
from importlib import metadata
paths = [sys.prefix, sys.base_prefix, site.getusersitepackages(), *sys.path]
for dist in metadata.distributions():  # editable installs (PEP 610): their project folders
    try:
        url = json.loads(dist.read_text("direct_url.json") or "{}")
    except (ValueError, OSError):
        continue
    if url.get("dir_info", {}).get("editable") and url.get("url", "").startswith("file://"):
        paths.append(url["url"][7:])
print(json.dumps(paths))
"""


def bwrap_available() -> bool:
    """Whether bubblewrap is installed and can make its namespaces here."""
    return _bwrap() is not None


@functools.cache
def _python_prefixes(python: str) -> tuple[str, ...]:
    """Everything ``python`` imports from: its prefixes, ``sys.path`` (``.pth`` entries included), the
    user site, and the project folders of editable installs (editseq's own among them)."""
    import json

    try:
        done = subprocess.run([python, "-c", _IMPORT_PATHS], capture_output=True, text=True, timeout=60,
                              cwd="/")
        paths = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return ()
    paths = [p for p in paths if isinstance(p, str) and p.startswith("/")]
    return tuple(dict.fromkeys([*paths, *(os.path.realpath(p) for p in paths)]))


def bwrap_prefix(run_dir: Path, workspace: Path, python: str, *, network: bool,
                 tmp_bytes: int, read_only: tuple[str, ...] = (), capabilities: bool = False) -> tuple[str, ...]:
    """The bubblewrap command for one run, or ``()`` where bubblewrap cannot run.

    The system read-only; a fresh ``/dev``, ``/proc``, and a size-capped
    ``/tmp``; ``/run`` and every home folder empty (no ssh-agent, docker or
    other host sockets, no ``~/.ssh``), with back in, read-only, only what the
    tests need: what the interpreter imports from and the workspace itself (so a test
    writing to it by absolute path gets "read-only file system"). The run folder
    (the shadow copy, results, home and temp of the run) is the one writable
    place. New user, PID, network, IPC, UTS and cgroup namespaces (bubblewrap
    brings the loopback up), a new session (no terminal injection), and the
    whole tree dies with its parent. Every capability is dropped (``--cap-drop
    ALL``): run as root, bubblewrap would otherwise leave the tests
    ``CAP_SYS_ADMIN`` in their namespace, enough to remount ``/`` (and so the
    workspace) read-write and write the host's files. ``read_only`` names more
    folders to show, read-only (the warm runner's own files); ``capabilities``
    keeps them (the warm runner's zygote, which drops them in each run it starts).
    """
    bwrap = _bwrap()
    if bwrap is None:
        return ()
    command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--size", str(tmp_bytes), "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/run"]
    homes = sorted(h for h in {"/root", "/home", os.path.expanduser("~")} if os.path.isdir(h))
    for home in homes:
        command += ["--tmpfs", home]
    hidden = ("/tmp", "/var/tmp", "/run", *homes)
    for keep in dict.fromkeys((*_python_prefixes(python), os.path.dirname(python), str(workspace), *read_only)):
        if os.path.exists(keep) and any(keep == h or keep.startswith(h.rstrip("/") + "/") for h in hidden):
            command += ["--ro-bind", keep, keep]
    command += ["--bind", str(run_dir), str(run_dir), "--unshare-all", "--die-with-parent", "--new-session"]
    if not capabilities:
        command += ["--cap-drop", "ALL"]
    if network:
        command.append("--share-net")
    return (*command, "--")


def user_tasks() -> int:
    """Tasks (threads included) owned by our real uid: what ``RLIMIT_NPROC`` compares against."""
    uid, count = os.getuid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:  # the process ended while we looked
                pass
    return count


_CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")


@contextlib.contextmanager
def pids_cgroup(limit: int):
    """A fresh pids cgroup capped at ``limit`` tasks for one run, as root; yields its ``cgroup.procs``
    path, or ``None`` where there is none to make (not root, no writable pids controller).

    ``RLIMIT_NPROC`` does not bind root (the kernel exempts it), so as root a fork bomb was bounded
    only by the timeout; a pids cgroup binds everyone. The run joins it before ``exec`` (see
    :func:`limit_setter`); the cgroup is removed afterwards.
    """
    import uuid

    folder = None
    if os.geteuid() == 0:
        for root in _CGROUP_ROOTS:
            candidate = os.path.join(root, f"editseq-run-{uuid.uuid4().hex[:12]}")
            try:
                os.mkdir(candidate)
            except OSError:
                continue
            try:
                with open(os.path.join(candidate, "pids.max"), "w") as handle:
                    handle.write(str(limit))
            except OSError:
                os.rmdir(candidate)
                continue
            folder = candidate
            break
    try:
        yield None if folder is None else os.path.join(folder, "cgroup.procs")
    finally:
        if folder is not None:
            for _ in range(50):  # the run's processes are being reaped
                try:
                    os.rmdir(folder)
                    break
                except OSError:
                    time.sleep(0.02)


def limit_setter(*, cpu_s: int | None, memory_bytes: int, file_bytes: int, nproc: int | None,
                 cgroup_procs: str | None = None):
    """The ``preexec_fn``: ``setrlimit`` calls, and joining the run's pids cgroup with raw ``os`` calls
    (no Python-level lock is taken, so this is safe after fork in a threaded parent). ``None`` leaves
    that limit as it is (the warm runner's zygote: each run it forks sets its own)."""
    settings = [(kind, value) for kind, value in (
        (resource.RLIMIT_CPU, None if cpu_s is None else (cpu_s, cpu_s + 1)),
        (resource.RLIMIT_AS, (memory_bytes, memory_bytes)),
        (resource.RLIMIT_FSIZE, (file_bytes, file_bytes)),
        (resource.RLIMIT_NPROC, None if nproc is None else (nproc, nproc)),
        (resource.RLIMIT_CORE, (0, 0)),
    ) if value is not None]

    def set_limits() -> None:
        if cgroup_procs is not None:
            fd = os.open(cgroup_procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # 0: the writing process itself
            finally:
                os.close(fd)
        for kind, value in settings:
            resource.setrlimit(kind, value)

    return set_limits


# --------------------------------------------------------------------------- supervision


class OutputCapture:
    """The first ``limit`` bytes of a stream; the rest is drained and counted, not kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]

    def text(self) -> str:
        text = self.kept.decode("utf-8", errors="replace")
        if self.total > len(self.kept):
            text += f"\n... [{self.total - len(self.kept)} more bytes not kept]"
        return text


@dataclass(slots=True)
class Finished:
    """How the supervised process ended: its exit code (``None`` when stopped), why it was stopped,
    the output kept, and the CPU time it used."""

    exit_code: int | None
    stopped: str  # "", "timeout" or "cancelled"
    stdout: str = ""
    stderr: str = ""
    cpu_s: float = 0.0  # user + system time of the process and the children it waited for
    results: bytes = b""  # what came through the results channel


def supervise(
    proc: subprocess.Popen, *, timeout_s: float, output_bytes: int, cancel: threading.Event | None,
    watch=None, results: int | None = None, results_bytes: int = 0,
) -> Finished:
    """Read both pipes until the process ends, killing its group on timeout or cancellation.

    Keeps the first ``output_bytes`` of stdout and of stderr each. The process
    is reaped with ``wait4`` rather than ``Popen.wait`` for its CPU time:
    ``unshare`` does not pass on a child's death by SIGXCPU, so CPU time is how
    a run stopped by ``RLIMIT_CPU`` is told apart. ``watch`` (called every
    half second) returning true stops the run too (``stopped == "watch"``):
    the runner's disk limit. ``results`` is the read end of the results
    channel, read like the output (its first ``results_bytes``) and closed.
    """
    deadline = time.monotonic() + timeout_s
    next_watch = time.monotonic() + _WATCH_S
    captures = {proc.stdout: OutputCapture(output_bytes), proc.stderr: OutputCapture(output_bytes)}
    channel = os.fdopen(results, "rb", buffering=0) if results is not None else None
    if channel is not None:
        captures[channel] = OutputCapture(results_bytes)
    stopped, reaped = "", None
    with selectors.DefaultSelector() as selector:
        for stream in captures:
            selector.register(stream, selectors.EVENT_READ)
        while not reaped:
            if cancel is not None and cancel.is_set():
                stopped = "cancelled"
            elif time.monotonic() > deadline:
                stopped = "timeout"
            elif watch is not None and time.monotonic() > next_watch:
                next_watch = time.monotonic() + _WATCH_S
                if watch():
                    stopped = "watch"
            if stopped:
                break
            if selector.get_map():
                for key, _ in selector.select(_POLL_S):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        captures[key.fileobj].add(chunk)
                    else:
                        selector.unregister(key.fileobj)
                continue
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = (status, usage)
            else:  # pipes closed but the process lives on
                time.sleep(_POLL_S)
    kill_group(proc)
    for stream in captures:
        stream.close()
    status, usage = reaped or os.wait4(proc.pid, 0)[1:]
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    out, err = (captures[stream].text() for stream in (proc.stdout, proc.stderr))
    data = bytes(captures[channel].kept) if channel is not None else b""
    cpu = usage.ru_utime + usage.ru_stime
    return Finished(None if stopped else proc.returncode, stopped, out, err, cpu, data)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group: pytest, ``unshare`` and whatever they started in it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
