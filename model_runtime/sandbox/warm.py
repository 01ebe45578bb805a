"""The warm runner, runner's side: start the zygote in the sandbox, hand it runs, supervise them.

A cold run starts a fresh interpreter that imports pytest and every plugin
installed in the user's environment (hypothesis and pytest-lsp alone take
~1.3 s here) before it runs a single test, and the refinement loop starts 30
of them for one function. :class:`Zygote` starts *one* process per
:class:`~model_runtime.sandbox.runner.Sandbox`, in the same sandbox a cold
run gets (:func:`~.process.bwrap_prefix` or :func:`~.process.namespace_prefix`,
with the runs folder bound where a cold run binds its run folder), which
imports all that once (:mod:`.zygote`, the half that runs inside) and then
forks one child per run into fresh namespaces of its own. What stays the same,
what is checked, and what falls back to a cold run is the README's sandbox
section and :mod:`.zygote`'s docstring; here:

* **Layout.** A session folder per zygote: ``plugin/`` (the results plugin and
  the zygote, shown read-only in the sandbox and copied afresh for every
  zygote, so nothing a run writes can change the next zygote) and ``runs/``
  (bound read-write). A run's folder is always ``runs/run`` (its ``ws``
  shadow copy, ``home``, ``tmp``): the same paths the zygote warmed up with,
  so nothing a plugin computed from ``HOME`` or ``TMPDIR`` at import points
  elsewhere. Everything under ``runs/`` is deleted after each run.
* **Protocol.** :func:`~.zygote.send` / :func:`~.zygote.receive` over a
  ``SOCK_SEQPACKET`` socket pair: ``config`` → ``ready``/``failed``; ``run``
  with the write ends of the run's stdout, stderr and results pipes →
  ``started``, ``exited`` (exit code, CPU time, whether the private mounts
  could be put back); ``kill`` stops a run; closing the socket stops the zygote.
* **Supervision** (:meth:`Zygote.execute`): the pipes are read as in a cold
  run (:func:`~.process.supervise`: the same output caps, the timeout,
  cancellation and the disk watch every half second). A stop asks the zygote
  to kill the run; one that does not answer within :data:`KILL_GRACE_S` is
  killed itself (its process group and its pids cgroup), and the next run
  starts a new one.
* **Limits.** The zygote's whole tree is in one pids cgroup as root (the
  run's budget plus its own three processes: the zygote, the run's ``C1`` and
  ``C2``), created when it starts and removed when it stops; its address
  space and file size are capped like a run's; each run sets the run's own
  rlimits (CPU time, memory, file size, processes, no core) before it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_runtime.sandbox import zygote as protocol
from model_runtime.sandbox.process import Finished, OutputCapture, limit_setter, pids_cgroup
from model_runtime.sandbox.shadow import remove_tree

__all__ = ["COLD_EVENT", "KILL_GRACE_S", "StartCancelled", "WarmUnavailable", "Zygote", "ZygoteSpec",
           "shadowed_module"]

ZYGOTE_FILE = Path(protocol.__file__)
ZYGOTE_MODULE = "_editseq_zygote"
COLD_EVENT = protocol.COLD_EVENT
#: How long a zygote may take to kill a run it was told to stop before it is killed itself.
KILL_GRACE_S = 0.5
#: How long a run's pipes may stay open after the zygote said the run ended (all writers are dead by then).
_DRAIN_S = 2.0
_POLL_S = 0.05
_WATCH_S = 0.5
#: Processes of the zygote's own in its cgroup besides the run's: itself, the run's C1 and C2.
ZYGOTE_TASKS = 3


class WarmUnavailable(Exception):
    """The zygote cannot start here (the reason says why); runs go cold."""


class StartCancelled(Exception):
    """The run was cancelled while its zygote was starting (the run goes cold, and stops at once)."""


@dataclass(frozen=True)
class ZygoteSpec:
    """Everything a zygote is started with; a sandbox whose settings change gets a new one."""

    python: str
    workspace: Path
    mode: str  # "bubblewrap" or "namespaces"
    prefix: Callable[[Path, Path], tuple[str, ...]]  # (runs folder, plugin folder) -> sandbox command
    environment: Callable[[Path, list[Path]], dict[str, str]]  # (run folder, PYTHONPATH) -> environment
    warmup_args: tuple[str, ...]
    network: bool
    processes: int
    memory_bytes: int
    file_bytes: int
    start_timeout_s: float = 120.0


class Zygote:
    """One warm runner: started by :meth:`start`, one run at a time through :meth:`execute`."""

    def __init__(self, spec: ZygoteSpec, plugin_file: Path, plugin_module: str) -> None:
        self.spec = spec
        self._plugin_file = plugin_file
        self._plugin_module = plugin_module
        self.session: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.info: dict = {}
        self.start_s = 0.0
        self._stack = contextlib.ExitStack()
        self._log = None
        self._owner = os.getpid()  # a forked copy of this object (multiprocessing) must not stop it
        self._released = threading.Event()  # lets the thread that started the zygote end
        self.retired = ""  # why this zygote serves no more runs

    # ----------------------------------------------------------------- layout

    @property
    def plugin_dir(self) -> Path:
        return self.session / "plugin"

    @property
    def runs(self) -> Path:
        return self.session / "runs"

    @property
    def run_dir(self) -> Path:
        return self.runs / "run"

    @property
    def plugin_path(self) -> Path:
        return self.plugin_dir / f"{self._plugin_module}.py"

    @property
    def alive(self) -> bool:
        return not self.retired and self.proc is not None and self.proc.poll() is None

    def modules(self) -> dict[str, bool]:
        return self.info.get("modules", {})

    # ----------------------------------------------------------------- start and stop

    def start(self, cancel: threading.Event | None = None) -> None:
        """Start the zygote and wait for its warm-up; :class:`WarmUnavailable` if it cannot serve,
        :class:`StartCancelled` when ``cancel`` is set meanwhile."""
        started = time.perf_counter()
        spec = self.spec
        self.session = Path(tempfile.mkdtemp(prefix="editseq-warm-"))
        try:
            self.plugin_dir.mkdir()
            shutil.copy(self._plugin_file, self.plugin_path)
            shutil.copy(ZYGOTE_FILE, self.plugin_dir / f"{ZYGOTE_MODULE}.py")
            self.runs.mkdir()
            self.prepare_run_dir(scratch=True)
            env = spec.environment(self.run_dir, [self.plugin_dir])
            prefix = spec.prefix(self.runs, self.plugin_dir)
            cgroup_procs = self._stack.enter_context(pids_cgroup(spec.processes + ZYGOTE_TASKS))
            parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.sock = parent
            self._log = open(self.session / "zygote.log", "w+b")
            try:
                self.proc = self._launch(lambda: subprocess.Popen(
                    [*prefix, spec.python, str(self.plugin_dir / f"{ZYGOTE_MODULE}.py"), str(child.fileno())],
                    cwd=self.runs, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                    start_new_session=True, pass_fds=(child.fileno(),),
                    preexec_fn=limit_setter(cpu_s=None, memory_bytes=spec.memory_bytes, file_bytes=spec.file_bytes,
                                            nproc=None, cgroup_procs=cgroup_procs),
                ))
            except (OSError, subprocess.SubprocessError) as exc:
                raise WarmUnavailable(f"cannot start {spec.python}: {exc}") from exc
            finally:
                child.close()
            protocol.send(parent, {"config": {
                "workspace": str(spec.workspace), "runs": str(self.runs), "scratch": str(self.run_dir / "ws"),
                "args": list(spec.warmup_args), "network": spec.network, "private": private_mounts(prefix),
                "mode": spec.mode,
            }})
            message = self._wait_message(spec.start_timeout_s, cancel)
            if message is None or "ready" not in message:
                why = (message or {}).get("failed") or "it did not answer"
                raise WarmUnavailable(f"the warm runner did not start: {why}{self._log_tail()}")
            self.info = message["ready"]
            self.clean_runs()
        except BaseException:
            self.close()
            raise
        self.start_s = time.perf_counter() - started

    def _launch(self, popen: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        """``popen()`` in a thread of its own that lives as long as this zygote: bubblewrap's
        ``--die-with-parent`` follows the *thread* that started it, and the run that starts a zygote
        may come from a worker thread that ends before the sandbox does."""
        box: dict = {}
        started = threading.Event()

        def hold() -> None:
            try:
                box["proc"] = popen()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                started.set()
            if "proc" in box:
                self._released.wait()

        threading.Thread(target=hold, name="editseq-warm-runner", daemon=True).start()
        started.wait()
        if "error" in box:
            raise box["error"]
        return box["proc"]

    def _wait_message(self, timeout_s: float, cancel: threading.Event | None = None) -> dict | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise StartCancelled()
            ready, _, _ = _select([self.sock], _POLL_S)
            if ready:
                message, fds = protocol.receive(self.sock)
                for fd in fds:
                    os.close(fd)
                return message
            if self.proc.poll() is not None:
                return None
        return None

    def _log_tail(self) -> str:
        try:
            self._log.flush()
            self._log.seek(0)
            lines = self._log.read()[-4000:].decode(errors="replace").strip().splitlines()
        except (OSError, ValueError, AttributeError):
            return ""
        return (" | " + " | ".join(lines[-3:])) if lines else ""

    def retire(self, why: str) -> None:
        self.retired = self.retired or why
        self.close()

    def close(self) -> None:
        """Stop the zygote (it kills what is left of a run), remove its cgroup and its folder."""
        if os.getpid() != self._owner:
            self.sock = self.proc = self._log = self.session = None
            self._stack.pop_all()
            self.retired = self.retired or "closed"
            return
        if self.sock is not None:
            with contextlib.suppress(OSError):
                protocol.send(self.sock, {"stop": 1})
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=KILL_GRACE_S)
                except subprocess.TimeoutExpired:
                    self._kill()
                    self.proc.wait()
            self._kill()  # bubblewrap's own processes, should any linger
        self._released.set()
        self._stack.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.session is not None and self.session.exists():
            remove_tree(self.session)
        self.retired = self.retired or "closed"

    def _kill(self) -> None:
        """SIGKILL the zygote's process group: the sandbox command, and through it everything inside."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    # ----------------------------------------------------------------- runs

    def prepare_run_dir(self, *, scratch: bool = False) -> None:
        """An empty ``runs/run`` with ``home`` and ``tmp`` (and ``ws`` for the warm-up)."""
        self.run_dir.mkdir()
        for folder in ("home", "tmp", *(("ws",) if scratch else ())):
            (self.run_dir / folder).mkdir()

    def clean_runs(self) -> None:
        """Delete everything under ``runs/``: the run's folder and whatever else a run put there."""
        if self.session is None or not self.runs.exists():
            return
        for entry in list(os.scandir(self.runs)):
            if entry.is_dir(follow_symlinks=False):
                remove_tree(Path(entry.path))
            else:
                os.unlink(entry.path)

    def execute(
        self, job: Mapping, *, timeout_s: float, output_bytes: int, cancel: threading.Event | None,
        watch: Callable[[], bool] | None, results_bytes: int,
    ) -> Finished | None:
        """One run; ``None`` when the zygote was lost before the run could end (run it cold)."""
        pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, results
        try:
            protocol.send(self.sock, {"run": dict(job)}, [w for _r, w in pipes])
        except OSError:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            self.retire("the warm runner is gone")
            return None
        for _r, w in pipes:
            os.close(w)
        readers = [os.fdopen(r, "rb", buffering=0) for r, _w in pipes]
        try:
            return self._supervise(readers, timeout_s=timeout_s, output_bytes=output_bytes, cancel=cancel,
                                   watch=watch, results_bytes=results_bytes)
        except BaseException:  # interrupted mid-run: the run may still be going; nothing of it may stay
            self.retire("a run was interrupted")
            raise
        finally:
            for reader in readers:
                reader.close()

    def _supervise(self, readers, *, timeout_s, output_bytes, cancel, watch, results_bytes) -> Finished | None:
        stdout, stderr, results = readers
        captures = {stdout: OutputCapture(output_bytes), stderr: OutputCapture(output_bytes),
                    results: OutputCapture(results_bytes)}
        deadline = time.monotonic() + timeout_s
        next_watch = time.monotonic() + _WATCH_S
        stopped, killed_at, exited, drained_by = "", None, None, None
        with selectors.DefaultSelector() as selector:
            for stream in captures:
                selector.register(stream, selectors.EVENT_READ)
            selector.register(self.sock, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if not stopped and exited is None:
                    if cancel is not None and cancel.is_set():
                        stopped = "cancelled"
                    elif now > deadline:
                        stopped = "timeout"
                    elif watch is not None and now > next_watch:
                        next_watch = now + _WATCH_S
                        if watch():
                            stopped = "watch"
                    if stopped:
                        killed_at = now
                        try:
                            protocol.send(self.sock, {"kill": 1})
                        except OSError:
                            pass
                if killed_at is not None and exited is None and now - killed_at > KILL_GRACE_S:
                    self.retire("it did not stop a run in time")
                    return Finished(None, stopped, captures[stdout].text(), captures[stderr].text(), 0.0,
                                    bytes(captures[results].kept))
                if exited is not None and (not selector.get_map() or now > drained_by):
                    break
                for key, _ in selector.select(_POLL_S):
                    if key.fileobj is self.sock:
                        message, fds = protocol.receive(self.sock)
                        for fd in fds:
                            os.close(fd)
                        if message is None:  # the zygote died: the run's outcome is unknown
                            self.retire("it ended during a run")
                            if stopped:
                                return Finished(None, stopped, captures[stdout].text(), captures[stderr].text(),
                                                0.0, bytes(captures[results].kept))
                            return None
                        if "exited" in message:
                            exited = message
                            drained_by = time.monotonic() + _DRAIN_S
                            selector.unregister(self.sock)
                        continue
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        captures[key.fileobj].add(chunk)
                    else:
                        selector.unregister(key.fileobj)
        if not exited.get("clean", True):
            self.retire("a run changed its private mounts beyond repair")
        code = exited.get("exited")
        return Finished(None if stopped else code, stopped, captures[stdout].text(), captures[stderr].text(),
                        float(exited.get("cpu", 0.0)), bytes(captures[results].kept))


def _select(readers, timeout):
    import select

    return select.select(readers, [], [], timeout)


# --------------------------------------------------------------------------- what a run may not do warm

#: Files that configure pytest: a candidate that writes one is run cold (the zygote warmed up without it).
CONFIG_FILES = frozenset({"pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"})
#: Modules Python imports at start-up from ``sys.path`` if present.
_STARTUP_MODULES = ("sitecustomize", "usercustomize")
_MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


def shadowed_module(folders: Sequence[Path], loaded: Mapping[str, bool], own: Sequence[str] = ()) -> str | None:
    """A module the zygote has loaded that the shadow copy provides too (first on ``sys.path`` in a cold
    run, so it would have been imported from the copy), or ``None``.

    ``folders`` are the copy's folders on ``PYTHONPATH``; ``loaded`` maps each top-level module the
    zygote holds to whether it is a namespace package (a plain folder of the same name only joins a
    namespace package; it shadows nothing else). ``own`` are the sandbox's modules, which come first
    in both kinds of run.
    """
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if entry.is_dir(follow_symlinks=False):
                if name in own or name not in loaded:
                    continue
                try:
                    package = any(n.startswith("__init__.") for n in os.listdir(entry.path))
                except OSError:
                    package = False
                if package or loaded[name]:
                    return name
            elif name.endswith(_MODULE_SUFFIXES):
                module = name.split(".", 1)[0]
                if module not in own and (module in loaded or module in _STARTUP_MODULES):
                    return module
    return None


def absolute_options(args: Sequence[str], base: Path) -> list[str]:
    """``args`` with the paths of ``-c``/``--config-file``/``--confcutdir``/``--rootdir`` made absolute
    against ``base`` (the warm-up runs elsewhere than the run's shadow copy, where they are relative)."""
    options = ("-c", "--config-file", "--confcutdir", "--rootdir")
    out, i = [], 0
    args = [str(a) for a in args]
    while i < len(args):
        arg = args[i]
        if arg in options and i + 1 < len(args):
            out += [arg, str(base / args[i + 1])]
            i += 2
            continue
        for option in options:
            if arg.startswith(option + "="):
                arg = f"{option}={base / arg[len(option) + 1:]}"
                break
            if option == "-c" and arg.startswith("-c") and len(arg) > 2 and not arg.startswith("--"):
                arg = f"-c{base / arg[2:]}"
                break
        out.append(arg)
        i += 1
    return out


def private_mounts(prefix: Sequence[str]) -> list[str]:
    """The folders a bubblewrap command mounts a fresh tmpfs on (``--tmpfs``, ``--dev``): the only
    places the zygote puts back after each run (under ``unshare`` there are none)."""
    return [prefix[i + 1] for i, arg in enumerate(prefix[:-1]) if arg in ("--tmpfs", "--dev")]


def first_record(data: bytes) -> dict:
    """The first JSON line of a run's results (where the zygote's ``editseq_cold`` record would be)."""
    line = data.split(b"\n", 1)[0]
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}
