"""Run a candidate's tests in a throwaway copy of the workspace, under limits, and read the results.

The refinement loop runs code a model wrote, against tests that may loop,
allocate, fork or delete files. The user's tree must come out of it
byte-identical, the machine must stay usable, and every run must end with a
result that says what happened. :class:`Sandbox` does one run per
:meth:`Sandbox.run`:

1. **Refuse** a candidate ``.py`` file that does not parse
   (:func:`~model_runtime.diff_apply.python_syntax_error`): nothing is copied
   and no process starts (``status="refused"``).
2. **Shadow copy** the workspace into a fresh temporary folder
   (:func:`shadow_copy`) and write the candidate files over it. Files are
   *copied*, not hard-linked: a hard link shares the inode, so a test that
   rewrites a file in place (``open(path, "w")``) would rewrite the user's
   file, and permission bits are per inode too, so a link cannot be made
   read-only on one side only. ext4 has no reflinks. Copying is cheap enough:
   40-80 ms for 200 files of 2-3 KB on a busy 2-core machine, against 3-5 ms
   for hard links (``benchmarks/refine_overhead.py``), inside the 150 ms
   per-round budget.
   Skipped: ``.git`` and other VCS folders, virtualenvs (by name or by their
   ``pyvenv.cfg``), ``__pycache__``, ``node_modules``, tool caches; symlinked
   folders (loops, and trees outside the workspace). Symlinked files are copied
   as regular files, so writing through them cannot reach their target. Over
   :attr:`ShadowPolicy.max_bytes` the copy stops with :class:`SandboxError`.
3. **Run** ``pytest`` in the *user's* interpreter (:func:`find_python`), with
   our plugin (:mod:`model_runtime._pytest_json_plugin`, a self-contained
   file copied next to the run) as the entry point, writing one JSON line per
   report. The shadow root (and its ``src/`` if any) is first on
   ``PYTHONPATH``, so the candidate shadows an editable install that points at
   the user's tree.
4. **Read** the JSON into :class:`CaseResult` per test and a :class:`RunResult`,
   then delete the run folder, always (also on errors and cancellation).

What is enforced, and where (:class:`SandboxLimits`):

=========================  ==================================================
wall-clock timeout         parent: polls while reading the pipes; SIGKILL to
                           the process group (``start_new_session``).
cancellation               parent: the same poll (every 50 ms) checks the
                           ``cancel`` event, so the kill comes within ~0.1 s.
CPU time                   kernel: ``RLIMIT_CPU`` per process (SIGXCPU, then
                           SIGKILL a second later), set in ``preexec_fn``;
                           told apart from other deaths by the CPU time
                           ``wait4`` reports.
memory                     kernel: ``RLIMIT_AS`` (address space) per process;
                           allocations past it raise ``MemoryError``. Virtual,
                           not resident, memory: keep it generous for tests
                           that import big native libraries.
file size                  kernel: ``RLIMIT_FSIZE`` per file written (CPython
                           ignores SIGXFSZ, so the write raises ``OSError``).
processes                  kernel: ``RLIMIT_NPROC``. It counts *all* tasks
                           (threads too) of the real user id, not just the
                           run's, so the limit is set to the user's current
                           count plus :attr:`SandboxLimits.processes`. Root
                           (and ``CAP_SYS_RESOURCE``) is exempt by the kernel:
                           then only the timeout and the PID namespace bound a
                           fork bomb.
no core dumps              kernel: ``RLIMIT_CORE`` = 0.
output size                parent: keeps the first ``output_bytes`` of stdout
                           and of stderr, drains and counts the rest; the
                           plugin trims each message and traceback itself.
environment                parent: only ``PATH``, ``HOME`` (an empty temp
                           folder), ``TMPDIR`` (inside the run folder), the
                           locale, ``PYTHONPATH`` and what
                           :attr:`Sandbox.env` adds. No tokens or keys.
network                    ``unshare --net`` (new network namespace, only a
                           loopback, brought up by the plugin) when
                           ``unshare`` can create namespaces without root
                           (user namespaces enabled); otherwise **not
                           enforced**, which :attr:`Sandbox.isolation` says.
stray processes            ``unshare --pid --fork --kill-child``: everything
                           the tests start dies with pytest, even processes
                           that left the process group (``setsid``). Without
                           namespaces only the process group is killed.
user's files               the shadow copy. A test that writes to the user's
                           tree by *absolute path* is not stopped (no mount
                           namespace); it only ever sees the shadow's paths.
=========================  ==================================================

Inside the user namespace the tests' uid reads 0 (``--map-root-user``, needed
to bring the loopback up); outside, files are still the real user's and no
privilege is gained. ``preexec_fn`` runs in the forked child before ``exec``;
it only calls ``setrlimit``, which takes no Python lock, so it is safe while
other threads (model generation) run.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from .diff_apply import python_syntax_error

__all__ = [
    "CaseResult",
    "Outcome",
    "RunResult",
    "RunStatus",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "ShadowPolicy",
    "ShadowStats",
    "find_python",
    "run_tests",
    "shadow_copy",
]

PLUGIN_FILE = Path(__file__).with_name("_pytest_json_plugin.py")
PLUGIN_MODULE = PLUGIN_FILE.stem

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed", "killed", "not_run"]
RunStatus = Literal["completed", "refused", "timeout", "cancelled", "killed", "crashed"]
Phase = Literal["collect", "setup", "call", "teardown"]

#: pytest exit statuses that mean "the tests ran": OK, TESTS_FAILED, NO_TESTS_COLLECTED.
_PYTEST_RAN = (0, 1, 5)
_POLL_S = 0.05
_MiB = 1024 * 1024


class SandboxError(ValueError):
    """The run cannot start: bad workspace, candidate path or test id, copy too large, no interpreter."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Per-run limits (see the module docstring for who enforces each)."""

    timeout_s: float = 60.0
    cpu_s: int = 60
    memory_bytes: int = 4096 * _MiB
    file_bytes: int = 256 * _MiB
    #: Tasks (processes and threads) the run may add to the user's current count.
    processes: int = 256
    #: Bytes kept of stdout and of stderr each.
    output_bytes: int = 64 * 1024
    network: bool = False


@dataclass(frozen=True, slots=True)
class ShadowPolicy:
    """What the shadow copy leaves out, and how big it may get."""

    max_bytes: int = 200 * _MiB
    skip_dirs: frozenset[str] = frozenset({
        ".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "__pycache__", "node_modules",
        ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
        ".eggs", ".idea", ".vscode",
    })


@dataclass(frozen=True, slots=True)
class ShadowStats:
    """What a shadow copy holds."""

    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One test's result; for a failure, where it failed and why.

    ``file`` is relative to the workspace when the crash is inside it
    (absolute otherwise, e.g. in a library); ``line`` is 1-based;
    ``statement`` is the source that raised (the whole ``assert`` statement).
    ``expected``/``actual`` are the reprs of the failing ``assert actual ==
    expected`` comparison, when pytest's assertion rewriting saw one.
    """

    node_id: str
    outcome: Outcome
    phase: Phase = "call"
    message: str = ""
    file: str | None = None
    line: int | None = None
    statement: str = ""
    expected: str | None = None
    actual: str | None = None
    traceback: str = ""
    duration_s: float = 0.0

    @property
    def bad(self) -> bool:
        """The test did not pass: failed, errored, was killed or never ran."""
        return self.outcome in ("failed", "error", "killed", "not_run")


@dataclass(frozen=True, slots=True)
class RunResult:
    """One sandboxed run: every requested test's result, and how the run ended.

    ``status`` is ``completed`` when pytest ran to its end (tests may still
    have failed); otherwise ``reason`` says what stopped it. ``timings`` holds
    seconds per phase (``check``, ``shadow``, ``apply``, ``pytest``,
    ``results``, ``cleanup``) for the overhead benchmark.
    """

    tests: tuple[CaseResult, ...] = ()
    status: RunStatus = "completed"
    reason: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)

    def _count(self, *outcomes: str) -> int:
        return sum(test.outcome in outcomes for test in self.tests)

    @property
    def passed(self) -> int:
        return self._count("passed")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def errors(self) -> int:
        """Tests that errored (setup, teardown, collection), were killed, or never ran."""
        return self._count("error", "killed", "not_run")

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"

    @property
    def killed_reason(self) -> str | None:
        """Why the run was stopped before pytest finished, if it was."""
        return self.reason if self.status in ("timeout", "cancelled", "killed") else None

    @property
    def green(self) -> bool:
        """pytest finished, at least one test ran, and none failed, errored or was left out."""
        return (
            self.status == "completed"
            and any(t.outcome == "passed" for t in self.tests)
            and not any(t.bad for t in self.tests)
        )


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


# --------------------------------------------------------------------------- shadow copy


def shadow_copy(workspace: Path, dest: Path, policy: ShadowPolicy = ShadowPolicy()) -> ShadowStats:
    """Copy ``workspace`` into ``dest`` (which must not exist) as the policy says."""
    stats = [0, 0]
    _copy_tree(workspace, dest, policy, stats)
    return ShadowStats(*stats)


def _copy_tree(src: Path, dest: Path, policy: ShadowPolicy, stats: list[int]) -> None:
    os.mkdir(dest)
    with os.scandir(src) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in policy.skip_dirs and not os.path.exists(
                    os.path.join(entry.path, "pyvenv.cfg")
                ):
                    _copy_tree(Path(entry.path), dest / entry.name, policy, stats)
            elif entry.is_file():  # follows a symlink to a file: copied, never linked
                stats[0] += 1
                stats[1] += entry.stat().st_size
                if stats[1] > policy.max_bytes:
                    raise SandboxError(
                        f"the workspace is larger than the shadow copy limit ({policy.max_bytes} bytes); "
                        "raise ShadowPolicy.max_bytes or skip large folders"
                    )
                shutil.copy(entry.path, dest / entry.name)


def _relative(path: str, what: str) -> PurePosixPath:
    """A workspace-relative path that stays inside the workspace, or :class:`SandboxError`."""
    rel = PurePosixPath(path.replace(os.sep, "/"))
    if not path or rel.is_absolute() or ".." in rel.parts or str(rel) == ".":
        raise SandboxError(f"{what} must be a path inside the workspace, relative to it: {path!r}")
    return rel


def _apply_files(shadow: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        target = shadow / _relative(rel, "a candidate file")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_dir():
            raise SandboxError(f"a candidate file cannot replace a folder or a link: {rel}")
        with open(target, "w", encoding="utf-8", newline="") as out:
            out.write(text)


def _remove_tree(path: Path) -> None:
    """Delete the run folder even where a test made files or folders read-only."""

    def retry(function, failed, _exc):
        os.chmod(os.path.dirname(failed), 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
        function(failed)

    handler = {"onexc": retry} if sys.version_info >= (3, 12) else {"onerror": retry}
    shutil.rmtree(path, **handler)


# --------------------------------------------------------------------------- process limits


@functools.cache
def _namespace_prefix(network: bool) -> tuple[str, ...]:
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


def _user_tasks() -> int:
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


def _limit_setter(limits: SandboxLimits, nproc: int):
    """The ``preexec_fn``: only ``setrlimit`` calls (safe after fork in a threaded parent)."""
    settings = [
        (resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1)),
        (resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes)),
        (resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes)),
        (resource.RLIMIT_NPROC, (nproc, nproc)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]

    def set_limits() -> None:
        for kind, value in settings:
            resource.setrlimit(kind, value)

    return set_limits


class _Capture:
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
class _Finished:
    exit_code: int | None
    stopped: str  # "", "timeout" or "cancelled"
    stdout: str = ""
    stderr: str = ""
    cpu_s: float = 0.0  # user + system time of the process and the children it waited for


def _supervise(
    proc: subprocess.Popen, limits: SandboxLimits, cancel: threading.Event | None
) -> _Finished:
    """Read both pipes until the process ends, killing its group on timeout or cancellation.

    The process is reaped with ``wait4`` rather than ``Popen.wait`` for its
    CPU time: ``unshare`` does not pass on a child's death by SIGXCPU, so CPU
    time is how a run stopped by ``RLIMIT_CPU`` is told apart.
    """
    deadline = time.monotonic() + limits.timeout_s
    captures = {proc.stdout: _Capture(limits.output_bytes), proc.stderr: _Capture(limits.output_bytes)}
    stopped, reaped = "", None
    with selectors.DefaultSelector() as selector:
        for stream in captures:
            selector.register(stream, selectors.EVENT_READ)
        while not reaped:
            if cancel is not None and cancel.is_set():
                stopped = "cancelled"
            elif time.monotonic() > deadline:
                stopped = "timeout"
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
    _kill_group(proc)
    for stream in captures:
        stream.close()
    status, usage = reaped or os.wait4(proc.pid, 0)[1:]
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    out, err = (capture.text() for capture in captures.values())
    cpu = usage.ru_utime + usage.ru_stime
    return _Finished(None if stopped else proc.returncode, stopped, out, err, cpu)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group: pytest, ``unshare`` and whatever they started in it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- results


def _read_records(path: Path, limit: int) -> list[dict]:
    """The plugin's JSON lines; a line cut off by a kill is ignored."""
    if not path.exists():
        return []
    with open(path, "rb") as file:
        data = file.read(limit)
    records = []
    for line in data.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


class _Results:
    """Turns the plugin's records into one :class:`CaseResult` per test, in run order."""

    def __init__(self, shadow: Path, records: list[dict]) -> None:
        self._prefix = str(shadow) + os.sep
        self.reports: dict[str, list[dict]] = {}
        self.started: list[str] = []
        self.collected: list[str] | None = None
        self.collect_errors: list[dict] = []
        self.usage_error = ""
        self.ended: int | None = None  # pytest's own exit status, if it got to the end
        self.any = bool(records)
        for record in records:
            event = record.get("event")
            if event == "start":
                self.started.append(record["nodeid"])
            elif event == "report":
                self.reports.setdefault(record["nodeid"], []).append(record)
            elif event == "collected":
                self.collected = record["nodeids"]
            elif event == "collect":
                self.collect_errors.append(record)
            elif event == "usage_error":
                self.usage_error = record["message"]
            elif event == "finished":
                self.ended = record["exitstatus"]

    def unshadow(self, text: str) -> str:
        return text.replace(self._prefix, "")

    def failure(self, node_id: str, outcome: Outcome, phase: Phase, record: dict, duration: float = 0.0) -> CaseResult:
        crash = record.get("crash") or {}
        comparison = record.get("comparison") or {}
        equal = comparison.get("op") == "=="
        path = crash.get("path")
        return CaseResult(
            node_id=node_id,
            outcome=outcome,
            phase=phase,
            message=self.unshadow(crash.get("message", "")),
            file=self.unshadow(path) if path else None,
            line=crash.get("line"),
            statement=record.get("statement", ""),
            actual=comparison.get("left") if equal else None,
            expected=comparison.get("right") if equal else None,
            traceback=self.unshadow(record.get("traceback", "")),
            duration_s=duration,
        )

    def case(self, node_id: str, stopped_reason: str) -> CaseResult:
        """A test that started (or was collected): its phases folded into one result."""
        phases = self.reports.get(node_id, [])
        duration = sum(p.get("duration", 0.0) for p in phases)
        failed = next((p for p in phases if p["outcome"] == "failed"), None)
        if failed is not None:
            outcome: Outcome = "failed" if failed["when"] == "call" else "error"
            return self.failure(node_id, outcome, failed["when"], failed, duration)
        done = {p["when"]: p for p in phases}
        if "teardown" not in done:
            if node_id not in self.started:
                return CaseResult(node_id, "not_run", "setup", f"not run: {stopped_reason or 'pytest stopped early'}")
            phase: Phase = "call" if "setup" in done else "setup"
            return CaseResult(node_id, "killed", phase, stopped_reason or "pytest ended during the test", duration_s=duration)
        main = done.get("call") or done.get("setup")
        if main["outcome"] == "skipped":
            return CaseResult(node_id, "xfailed" if main["xfail"] else "skipped", main["when"], duration_s=duration)
        return CaseResult(node_id, "xpassed" if main["xfail"] else "passed", "call", duration_s=duration)

    def missing(self, wanted: str, problem: str) -> CaseResult:
        """A requested id that matched no test: its module's collection error, or not found."""
        for error in self.collect_errors:
            where = error["nodeid"]
            if not where or wanted == where or wanted.startswith((where + "::", where + "/")):
                return self.failure(wanted, "error", "collect", error)
        if problem:
            return CaseResult(wanted, "error", "collect", problem)
        return CaseResult(wanted, "error", "collect", f"test not found: {wanted} (no test matches this id)")


def _matches(node_id: str, wanted: str) -> bool:
    """Same rule as the plugin's selection: an exact id, a parametrized variant, or a container."""
    if node_id == wanted:
        return True
    if "::" in wanted:
        return node_id.startswith((wanted + "::", wanted + "["))
    return node_id.startswith((wanted + "::", wanted.rstrip("/") + "/"))


# --------------------------------------------------------------------------- the sandbox


class Sandbox:
    """Runs pytest for a workspace, one candidate at a time. Cheap to keep; holds no files.

    ``python`` is the user's interpreter (default: :func:`find_python`).
    ``env`` adds variables the user's tests need (API base URLs, feature
    flags); nothing else is inherited.
    """

    def __init__(
        self,
        workspace: str | os.PathLike[str],
        *,
        python: str | None = None,
        limits: SandboxLimits = SandboxLimits(),
        shadow: ShadowPolicy = ShadowPolicy(),
        env: Mapping[str, str] | None = None,
        pytest_args: Sequence[str] = (),
    ) -> None:
        self.workspace = Path(workspace).resolve()
        if not self.workspace.is_dir():
            raise SandboxError(f"workspace is not a folder: {workspace}")
        self.python = find_python(self.workspace, python)
        self.limits = limits
        self.shadow = shadow
        self.env = dict(env or {})
        self.pytest_args = tuple(pytest_args)

    @property
    def isolation(self) -> tuple[str, ...]:
        """The namespaces a run gets on this machine: ``"pid"``, and ``"network"`` unless allowed."""
        if not _namespace_prefix(self.limits.network):
            return ()
        return ("pid",) if self.limits.network else ("pid", "network")

    def run(
        self,
        test_ids: Iterable[str],
        files: Mapping[str, str] | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Run ``test_ids`` (pytest node ids, files or folders, relative to the workspace)
        with ``files`` (relative path -> new text) written over the shadow copy.

        Raises :class:`SandboxError` for input that can never run (an id or a
        path outside the workspace, no ids, a workspace over the size cap);
        everything the tests do comes back in the :class:`RunResult`.
        """
        started = time.perf_counter()
        timings: dict[str, float] = {}
        files = dict(files or {})
        wanted = list(dict.fromkeys(test_ids))
        if not wanted:
            raise SandboxError("no test ids to run")
        for test_id in wanted:
            _relative(test_id.split("::", 1)[0], "a test id's file")
        for rel, text in files.items():
            _relative(rel, "a candidate file")
            problem = python_syntax_error(text) if rel.endswith(".py") else None
            if problem:
                timings["check"] = time.perf_counter() - started
                return RunResult(
                    status="refused", reason=f"{rel} does not parse: {problem}",
                    duration_s=timings["check"], timings=timings,
                )
        timings["check"] = time.perf_counter() - started
        run_dir = Path(tempfile.mkdtemp(prefix="editseq-run-"))
        try:
            return self._run_in(run_dir, wanted, files, cancel, timings, started)
        finally:
            mark = time.perf_counter()
            _remove_tree(run_dir)
            timings["cleanup"] = time.perf_counter() - mark

    def _run_in(
        self, run_dir: Path, wanted: list[str], files: dict[str, str],
        cancel: threading.Event | None, timings: dict[str, float], started: float,
    ) -> RunResult:
        shadow = run_dir / "ws"
        mark = time.perf_counter()
        shadow_copy(self.workspace, shadow, self.shadow)
        timings["shadow"] = time.perf_counter() - mark
        mark = time.perf_counter()
        _apply_files(shadow, files)
        timings["apply"] = time.perf_counter() - mark

        present = [w for w in wanted if (shadow / w.split("::", 1)[0]).exists()]
        lost = {w: f"test file not found: {w.split('::', 1)[0]}" for w in wanted if w not in present}
        finished = _Finished(0, "", "", "")
        mark = time.perf_counter()
        if present:
            finished = self._pytest(run_dir, shadow, present, cancel)
        timings["pytest"] = time.perf_counter() - mark

        mark = time.perf_counter()
        results = _Results(shadow, _read_records(run_dir / "results.jsonl", 64 * _MiB))
        status, reason = self._status(finished, results, bool(present))
        tests = self._cases(results, wanted, lost, reason if status != "completed" else "")
        timings["results"] = time.perf_counter() - mark
        return RunResult(
            tests=tuple(tests), status=status, reason=reason,
            exit_code=finished.exit_code if results.ended is None else results.ended,
            duration_s=time.perf_counter() - started, stdout=results.unshadow(finished.stdout),
            stderr=results.unshadow(finished.stderr), timings=timings,
        )

    def _pytest(
        self, run_dir: Path, shadow: Path, wanted: list[str], cancel: threading.Event | None
    ) -> _Finished:
        plugin_dir = run_dir / "plugin"
        plugin_dir.mkdir()
        shutil.copy(PLUGIN_FILE, plugin_dir)
        (run_dir / "select.json").write_text(json.dumps(wanted), encoding="utf-8")
        for folder in ("home", "tmp"):
            (run_dir / folder).mkdir()
        paths = list(dict.fromkeys(w.split("::", 1)[0] for w in wanted))
        command = [
            *_namespace_prefix(self.limits.network),
            self.python, str(plugin_dir / PLUGIN_FILE.name),
            "-p", PLUGIN_MODULE,
            f"--editseq-json={run_dir / 'results.jsonl'}",
            f"--editseq-select={run_dir / 'select.json'}",
            f"--rootdir={shadow}", "--continue-on-collection-errors", "-q",
            *self.pytest_args, "--", *paths,
        ]
        nproc = _user_tasks() + self.limits.processes
        try:
            proc = subprocess.Popen(
                command, cwd=shadow, env=self._environment(run_dir, shadow, plugin_dir),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, preexec_fn=_limit_setter(self.limits, nproc),
            )
        except OSError as exc:
            raise SandboxError(f"cannot start {self.python}: {exc}") from exc
        try:
            return _supervise(proc, self.limits, cancel)
        finally:
            if proc.returncode is None:  # the parent was interrupted mid-run
                _kill_group(proc)
                proc.wait()

    def _environment(self, run_dir: Path, shadow: Path, plugin_dir: Path) -> dict[str, str]:
        """A clean environment: nothing of ours (tokens, keys, our virtualenv) leaks into the tests."""
        bin_dir = os.path.dirname(self.python)
        path = os.environ.get("PATH", os.defpath)
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{path}",
            "HOME": str(run_dir / "home"),
            "TMPDIR": str(run_dir / "tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": os.pathsep.join(
                str(p) for p in (plugin_dir, shadow, shadow / "src") if p.is_dir()
            ),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("LC_ALL", "LC_CTYPE", "TZ"):
            if name in os.environ:
                env[name] = os.environ[name]
        if Path(bin_dir, "..", "pyvenv.cfg").exists():
            env["VIRTUAL_ENV"] = str(Path(bin_dir).parent)
        env.update(self.env)
        return env

    def _status(self, finished: _Finished, results: _Results, ran: bool) -> tuple[RunStatus, str]:
        """How the run ended. pytest's own exit status (from the plugin) is trusted over the
        process's, which ``unshare`` may have rewritten."""
        limits = self.limits
        if finished.stopped == "timeout":
            return "timeout", f"timed out after {limits.timeout_s:g} s (wall clock)"
        if finished.stopped == "cancelled":
            return "cancelled", "cancelled"
        if not ran or results.ended in _PYTEST_RAN:
            return "completed", ""
        if results.usage_error:
            return "crashed", f"pytest refused the arguments: {results.usage_error}"
        if results.ended is not None:
            return "crashed", f"pytest ended with exit status {results.ended}: {_tail(finished)}"
        if not results.any:
            return "crashed", f"pytest did not start with {self.python}: {_tail(finished)}"
        if finished.cpu_s >= limits.cpu_s:
            return "killed", f"CPU time limit exceeded ({limits.cpu_s} s)"
        code = finished.exit_code or 0
        if code < 0:
            return "killed", f"killed by {signal.Signals(-code).name}"
        return "killed", f"pytest died during the run (exit code {code}; out of memory, a signal or os._exit)"

    def _cases(self, results: _Results, wanted: list[str], lost: dict[str, str], stopped: str) -> list[CaseResult]:
        """Every collected test in run order, then every requested id that matched none."""
        order = list(dict.fromkeys([*results.started, *(results.collected or [])]))
        cases = [results.case(node_id, stopped) for node_id in order]
        for want in wanted:
            if not any(_matches(node_id, want) for node_id in order):
                problem = lost.get(want) or (stopped if results.collected is None else "")
                cases.append(results.missing(want, problem))
        return cases


def _tail(finished: _Finished) -> str:
    """The last lines a dying process printed: usually the reason."""
    lines = finished.stderr.strip().splitlines() or finished.stdout.strip().splitlines()
    return " | ".join(lines[-3:]) or "(no output)"


def run_tests(
    workspace: str | os.PathLike[str],
    test_ids: Iterable[str],
    files: Mapping[str, str] | None = None,
    *,
    cancel: threading.Event | None = None,
    **settings,
) -> RunResult:
    """One run without keeping a :class:`Sandbox`; ``settings`` go to its constructor."""
    return Sandbox(workspace, **settings).run(test_ids, files, cancel=cancel)
