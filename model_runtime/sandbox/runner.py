"""Run a candidate's tests in a throwaway copy of the workspace, under limits, and read the results.

The refinement loop runs code a model wrote, against tests that may loop,
allocate, fork or delete files. The user's tree must come out of it
byte-identical, the machine must stay usable, and every run must end with a
result that says what happened. :class:`Sandbox` does one run per
:meth:`Sandbox.run`:

1. **Refuse** a candidate ``.py`` file that does not parse
   (:func:`~model_runtime.edits.diff_apply.python_syntax_error`): nothing is copied
   and no process starts (``status="refused"``).
2. **Shadow copy** the workspace into a fresh temporary folder
   (:func:`~model_runtime.sandbox.shadow.shadow_copy`) and write the candidate
   files over it. Files are copied, not hard-linked, so nothing a test does to
   them reaches the user's files; VCS folders, virtualenvs, caches and
   symlinked folders are skipped, and over :attr:`ShadowPolicy.max_bytes` the
   copy stops with :class:`SandboxError` (:mod:`.shadow` says why each).
3. **Run** ``pytest`` in the *user's* interpreter
   (:func:`~model_runtime.sandbox.process.find_python`), under bubblewrap or
   the fallback and the limits below (:mod:`.process`), with our plugin
   (:mod:`model_runtime.sandbox.pytest_json_plugin`, a self-contained file
   copied next to the run) as the entry point, sending one JSON line per
   report through the results pipe. The shadow root (and its ``src/`` if any) is first on
   ``PYTHONPATH``, so the candidate shadows an editable install that points at
   the user's tree.
4. **Read** the JSON into :class:`CaseResult` per test and a :class:`RunResult`
   (:mod:`.results`), then delete the run folder, always (also on errors and
   cancellation).

This module holds the :class:`Sandbox` that does those steps in order, its
limits (:class:`SandboxLimits`) and :func:`run_tests`; it re-exports the names
of the modules it drives, so ``model_runtime.sandbox.runner`` stays the one
place front ends import from.

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
                           as root each run gets a pids cgroup capped at
                           :attr:`SandboxLimits.processes` instead
                           (:func:`~.process.pids_cgroup`), where cgroups are
                           writable; else only the timeout and the PID
                           namespace bound a fork bomb.
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
user's files               the shadow copy (regular files only, no link out
                           of the workspace). Under bubblewrap the real tree
                           is read-only as well; in the fallback a test that
                           writes to it by *absolute path* is not stopped.
mounts (bubblewrap)        ``bwrap`` where it runs (:func:`isolation_mode`):
                           the system read-only, a private size-capped
                           ``/tmp``, empty ``/run`` and homes (no host
                           sockets, no ``~/.ssh``), all namespaces; the
                           ``unshare`` rows above are the fallback.
disk                       parent: the run folder's size, polled every 0.5 s
                           (:attr:`SandboxLimits.disk_bytes`); over it, the
                           run is killed.
results                    a pipe named only in ``EDITSEQ_RESULTS_FD``, which
                           the plugin removes before pytest starts; a run whose
                           results disagree with pytest's exit status is
                           ``crashed``, never green.
=========================  ==================================================

Inside the user namespace the tests' uid reads 0 (``--map-root-user``, needed
to bring the loopback up); outside, files are still the real user's and no
privilege is gained. ``preexec_fn`` only calls ``setrlimit``, so it is safe
while other threads (model generation) run (:mod:`.process` says why).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_runtime.defaults import SUITE
from model_runtime.edits.diff_apply import python_syntax_error
from model_runtime.sandbox.errors import SandboxError
from model_runtime.sandbox.process import (
    Finished,
    bwrap_available,
    bwrap_prefix,
    find_python,
    kill_group,
    limit_setter,
    namespace_prefix,
    pids_cgroup,
    supervise,
    user_tasks,
)
from model_runtime.sandbox.results import (
    CaseResult,
    Outcome,
    Phase,
    Results,
    RunResult,
    RunStatus,
    matches,
    parse_records,
)
from model_runtime.sandbox.shadow import ShadowPolicy, ShadowStats, apply_files, relative, remove_tree, shadow_copy

__all__ = [
    "CaseResult",
    "Outcome",
    "Phase",
    "RunResult",
    "RunStatus",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "ShadowPolicy",
    "ShadowStats",
    "find_python",
    "isolation_mode",
    "run_tests",
    "shadow_copy",
]

#: The in-sandbox plugin, and the module name it runs under there (unlikely to meet a user's module).
PLUGIN_FILE = Path(__file__).with_name("pytest_json_plugin.py")
PLUGIN_MODULE = "_editseq_results"

#: How runs are isolated: ``bubblewrap`` where it can run (else the fallback), or ``namespaces`` (``unshare``).
MODES = ("auto", "bubblewrap", "namespaces")

#: pytest exit statuses that mean "the tests ran": OK, TESTS_FAILED, NO_TESTS_COLLECTED.
_PYTEST_RAN = (0, 1, 5)
_MiB = 1024 * 1024
#: The results channel's variable (the plugin removes it before any test code runs) and its size cap.
RESULTS_FD = "EDITSEQ_RESULTS_FD"
_RESULTS_BYTES = 64 * _MiB


#: Set in every run's environment: editseq's own pytest plugin (installed in the user's environment,
#: so pytest loads it there too) then neither writes a failure report nor refines inside the sandbox.
SANDBOX_FLAG = "EDITSEQ_SANDBOX"
#: Variables that configure the user's pytest: passed into the otherwise scrubbed sandbox environment.
PYTEST_VARIABLES = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")


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
    #: Bytes the whole run may write: its folder (shadow copy included), and under bubblewrap ``/tmp``.
    disk_bytes: int = 1024 * _MiB
    network: bool = False


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
        mode: str = "auto",
    ) -> None:
        if mode not in MODES:
            raise SandboxError(f"the sandbox mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.workspace = Path(workspace).resolve()
        if not self.workspace.is_dir():
            raise SandboxError(f"workspace is not a folder: {workspace}")
        self.python = find_python(self.workspace, python)
        self.limits = limits
        self.shadow = shadow
        self.env = dict(env or {})
        self.pytest_args = tuple(pytest_args)
        self.mode = mode

    @property
    def in_force(self) -> str:
        """What isolates a run here: ``bubblewrap``, ``namespaces`` (``unshare``) or ``limits only``."""
        if self.mode == "bubblewrap" and not bwrap_available():
            return "unavailable"
        return isolation_mode(self.limits.network, allow_bwrap=self.mode != "namespaces")

    @property
    def isolation(self) -> tuple[str, ...]:
        """The namespaces a run gets on this machine: ``"pid"``, and ``"network"`` unless allowed."""
        if self.in_force not in ("bubblewrap", "namespaces"):
            return ()
        return ("pid",) if self.limits.network else ("pid", "network")

    def _bwrap(self, run_dir: Path) -> tuple[str, ...]:
        return bwrap_prefix(run_dir, self.workspace, self.python, network=self.limits.network,
                            tmp_bytes=self.limits.disk_bytes)

    def _prefix(self, run_dir: Path) -> tuple[str, ...]:
        if self.mode != "namespaces":
            prefix = self._bwrap(run_dir)
            if prefix:
                return prefix
            if self.mode == "bubblewrap":
                raise SandboxError("the bubblewrap sandbox was asked for, but bwrap is not installed or "
                                   "cannot make namespaces here (apt install bubblewrap)")
        return namespace_prefix(self.limits.network)

    def run(
        self,
        test_ids: Iterable[str],
        files: Mapping[str, str] | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Run ``test_ids`` (pytest node ids, files or folders, relative to the workspace; ``.``
        for the whole suite, as a bare ``pytest`` collects it) with ``files`` (relative path -> new text) written over the shadow copy.

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
            if test_id != SUITE:
                relative(test_id.split("::", 1)[0], "a test id's file")
        for rel, text in files.items():
            relative(rel, "a candidate file")
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
            remove_tree(run_dir)
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
        apply_files(shadow, files)
        timings["apply"] = time.perf_counter() - mark

        present = [w for w in wanted if (shadow / w.split("::", 1)[0]).exists()]
        lost = {w: f"test file not found: {w.split('::', 1)[0]}" for w in wanted if w not in present}
        finished = Finished(0, "", "", "")
        mark = time.perf_counter()
        if present:
            finished = self._pytest(run_dir, shadow, present, cancel)
        timings["pytest"] = time.perf_counter() - mark

        mark = time.perf_counter()
        results = Results(shadow, parse_records(finished.results))
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
    ) -> Finished:
        plugin_dir = run_dir / "plugin"
        plugin_dir.mkdir()
        shutil.copy(PLUGIN_FILE, plugin_dir / f"{PLUGIN_MODULE}.py")
        (run_dir / "select.json").write_text(json.dumps(wanted), encoding="utf-8")
        for folder in ("home", "tmp"):
            (run_dir / folder).mkdir()
        # The whole suite: no paths at all, so pytest collects what a bare ``pytest`` would (testpaths).
        paths = [] if SUITE in wanted else list(dict.fromkeys(w.split("::", 1)[0] for w in wanted))
        command = [
            *self._prefix(run_dir),
            self.python, str(plugin_dir / f"{PLUGIN_MODULE}.py"),
            "-p", PLUGIN_MODULE,
            f"--editseq-select={run_dir / 'select.json'}",
            f"--rootdir={shadow}", "--continue-on-collection-errors", "-q",
            *self.pytest_args, "--", *paths,
        ]
        nproc = user_tasks() + self.limits.processes
        with pids_cgroup(self.limits.processes) as cgroup_procs:
            # The results channel: a pipe named only in an environment variable the plugin removes.
            channel, writer = os.pipe()
            env = {**self._environment(run_dir, shadow, plugin_dir), RESULTS_FD: str(writer)}
            try:
                proc = subprocess.Popen(
                    command, cwd=shadow, env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    start_new_session=True, pass_fds=(writer,),
                    preexec_fn=limit_setter(
                        cpu_s=self.limits.cpu_s, memory_bytes=self.limits.memory_bytes,
                        file_bytes=self.limits.file_bytes, nproc=nproc, cgroup_procs=cgroup_procs,
                    ),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                os.close(channel)
                raise SandboxError(f"cannot start {self.python}: {exc}") from exc
            finally:
                os.close(writer)
            try:
                return supervise(
                    proc, timeout_s=self.limits.timeout_s, output_bytes=self.limits.output_bytes, cancel=cancel,
                    watch=lambda: tree_bytes(run_dir, self.limits.disk_bytes) > self.limits.disk_bytes,
                    results=channel, results_bytes=_RESULTS_BYTES,
                )
            finally:
                if proc.returncode is None:  # the parent was interrupted mid-run
                    kill_group(proc)
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
            SANDBOX_FLAG: "1",
        }
        for name in ("LC_ALL", "LC_CTYPE", "TZ"):
            if name in os.environ:
                env[name] = os.environ[name]
        if Path(bin_dir, "..", "pyvenv.cfg").exists():
            env["VIRTUAL_ENV"] = str(Path(bin_dir).parent)
        env.update(self.env)
        return env

    def _status(self, finished: Finished, results: Results, ran: bool) -> tuple[RunStatus, str]:
        """How the run ended. pytest's own exit status (from the plugin) is trusted over the
        process's, which ``unshare`` may have rewritten."""
        limits = self.limits
        if finished.stopped == "timeout":
            return "timeout", f"timed out after {limits.timeout_s:g} s (wall clock)"
        if finished.stopped == "cancelled":
            return "cancelled", "cancelled"
        if finished.stopped == "watch":
            return "killed", f"the run wrote more than its disk limit ({limits.disk_bytes} bytes)"
        code = finished.exit_code
        if ran and results.ended is not None and code is not None and 0 <= code < 128 and code != results.ended:
            # The channel says pytest ended one way, the process another: something wrote to the channel.
            return "crashed", (f"the test results say pytest ended with {results.ended} but it exited with {code}; "
                               "not trusted")
        if not ran or results.ended in _PYTEST_RAN:
            return "completed", ""
        if results.usage_error:
            return "crashed", f"pytest refused the arguments: {results.usage_error}"
        if results.ended is not None:
            return "crashed", f"pytest ended with exit status {results.ended}: {_tail(finished)}"
        if not results.any:
            return "crashed", f"pytest did not start with {self.python}: {_tail(finished)}"
        code = finished.exit_code or 0
        # A signal shows as a negative code, or (through bubblewrap, which exits as its child did) 128 + it.
        sig = -code if code < 0 else code - 128 if 128 < code < 128 + signal.NSIG else 0
        if finished.cpu_s >= limits.cpu_s or sig == signal.SIGXCPU:
            return "killed", f"CPU time limit exceeded ({limits.cpu_s} s)"
        if sig:
            return "killed", f"killed by {signal.Signals(sig).name}"
        return "killed", f"pytest died during the run (exit code {code}; out of memory, a signal or os._exit)"

    def _cases(self, results: Results, wanted: list[str], lost: dict[str, str], stopped: str) -> list[CaseResult]:
        """Every collected test in run order, then every requested id that matched none."""
        order = list(dict.fromkeys([*results.started, *(results.collected or [])]))
        cases = [results.case(node_id, stopped) for node_id in order]
        for want in wanted:
            if not any(matches(node_id, want) for node_id in order):
                problem = lost.get(want) or (stopped if results.collected is None else "")
                cases.append(results.missing(want, problem))
        return cases


def isolation_mode(network: bool = False, *, allow_bwrap: bool = True) -> str:
    """What isolates test runs on this machine: ``bubblewrap`` (a read-only system, private ``/tmp``,
    home and ``/run``, all namespaces), ``namespaces`` (``unshare``: PID and network only) or ``limits
    only`` (rlimits, timeout and the shadow copy). The README's security section says what each holds."""
    if allow_bwrap and bwrap_available():
        return "bubblewrap"
    return "namespaces" if namespace_prefix(network) else "limits only"


def tree_bytes(folder: Path, enough: int) -> int:
    """Bytes in the files under ``folder`` (links not followed), counting stops past ``enough``."""
    total, stack = 0, [str(folder)]
    while stack and total <= enough:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:  # removed or made unreadable while we looked
            continue
    return total


def _tail(finished: Finished) -> str:
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
