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
   (:func:`~model_runtime.sandbox.process.find_python`, resolved once to the
   real executable by :func:`~model_runtime.sandbox.process.resolve_python`),
   under bubblewrap or the fallback and the limits below (:mod:`.process`),
   with our plugin (:mod:`model_runtime.sandbox.pytest_json_plugin`, a
   self-contained file copied next to the run) as the entry point, sending
   one JSON line per report through the results pipe. The shadow root (and
   its ``src/`` if any) is first on ``PYTHONPATH``, so the candidate shadows
   an editable install that points at the user's tree. By default through
   the *warm runner* (:mod:`.warm`, :mod:`.zygote`): one process per sandbox,
   in the same sandbox, that has imported pytest and the user's plugins once
   and forks each run into namespaces of its own, with the same limits,
   environment, arguments and results; a run it cannot serve exactly as a
   fresh process would is run cold (:attr:`Sandbox.cold_reason`).
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
                           namespaces only the process group is killed (and
                           no run is warm). Warm: the run's own PID namespace
                           dies with it, then the zygote kills whatever is
                           left in its own.
user's files               the shadow copy (regular files only, no link out
                           of the workspace). Under bubblewrap the real tree
                           is read-only as well; in the fallback a test that
                           writes to it by *absolute path* is not stopped.
mounts (bubblewrap)        ``bwrap`` where it runs (:func:`isolation_mode`):
                           the system read-only, a private size-capped
                           ``/tmp``, empty ``/run`` and homes (no host
                           sockets, no ``~/.ssh``), all namespaces, no
                           capabilities; the ``unshare`` rows above are the
                           fallback. Warm: the zygote's private mounts are
                           put back after each run.
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
privilege is gained. The wall-clock timeout and the CPU limit of a warm run
count from its fork: the tests get the time a cold run spends starting pytest.
``preexec_fn`` only calls ``setrlimit``, so it is safe
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
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from model_runtime.defaults import SUITE
from model_runtime.edits.diff_apply import python_syntax_error
from model_runtime.sandbox.errors import SandboxError
from model_runtime.sandbox.process import (
    SHIM_VARIABLES,
    Finished,
    bwrap_available,
    bwrap_prefix,
    find_python,
    kill_group,
    limit_setter,
    namespace_prefix,
    pids_cgroup,
    resolve_python,
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
from model_runtime.sandbox.warm import (
    COLD_EVENT,
    CONFIG_FILES,
    ZYGOTE_MODULE,
    StartCancelled,
    WarmUnavailable,
    Zygote,
    ZygoteSpec,
    absolute_options,
    first_record,
    shadowed_module,
)

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
#: ``0``/``false``/``no``/``off`` turns the warm runner off for every :class:`Sandbox` that does not say.
WARM_VARIABLE = "EDITSEQ_SANDBOX_WARM"
#: A sandbox whose zygote had to be replaced this many times runs cold from then on.
_MAX_ZYGOTE_STARTS = 4


def warm_default() -> bool:
    """Whether sandboxes use the warm runner unless told: yes, unless ``EDITSEQ_SANDBOX_WARM`` says no."""
    return os.environ.get(WARM_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")


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
    """Runs pytest for a workspace, one candidate at a time.

    ``python`` is the user's interpreter (default: :func:`find_python`).
    ``env`` adds variables the user's tests need (API base URLs, feature
    flags); nothing else is inherited.

    ``warm`` (default: on, unless ``EDITSEQ_SANDBOX_WARM=0``): runs go through
    a warm runner (:mod:`.warm`), a process in the sandbox that has imported
    pytest and the user's plugins once and forks each run into namespaces of
    its own, so a candidate pays for its tests and not for pytest's start-up.
    It is started by the first run and kept until :meth:`close` (or the
    ``with`` block's end, or garbage collection); it holds a temporary folder
    and a process meanwhile. A run it cannot take exactly as a cold run
    would goes cold (:attr:`cold_reason` says why, :attr:`warm_runs` counts
    the warm ones); so does a second run while one is in progress.
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
        warm: bool | None = None,
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
        self.warm = warm_default() if warm is None else bool(warm)
        #: Why runs stopped going warm (or the last run went cold), for front ends and tests.
        self.cold_reason = ""
        #: Runs the warm runner took, and seconds spent starting it.
        self.warm_runs = 0
        self.warm_start_s = 0.0
        self._warm = _WarmState()
        self._finalizer = weakref.finalize(self, self._warm.close)

    @property
    def executable(self) -> str:
        """:attr:`python` resolved to the real interpreter once (a pyenv shim costs ~76 ms per start
        and adds ``PYENV_*`` variables): :func:`~.process.resolve_python`, from the workspace."""
        return resolve_python(self.python, str(self.workspace))

    def close(self) -> None:
        """Stop the warm runner, if one is running (the next run starts a new one)."""
        self._warm.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

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

    def _bwrap(self, run_dir: Path, read_only: tuple[str, ...] = (), capabilities: bool = False) -> tuple[str, ...]:
        return bwrap_prefix(run_dir, self.workspace, self.executable, network=self.limits.network,
                            tmp_bytes=self.limits.disk_bytes, read_only=read_only, capabilities=capabilities)

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
        warm = self._run_warm(wanted, files, cancel, timings, started)
        if warm is not None:
            return warm
        run_dir = Path(tempfile.mkdtemp(prefix="editseq-run-"))
        try:
            return self._run_in(run_dir, wanted, files, cancel, timings, started)
        finally:
            mark = time.perf_counter()
            remove_tree(run_dir)
            timings["cleanup"] = time.perf_counter() - mark

    # ----------------------------------------------------------------- the warm runner

    def _run_warm(
        self, wanted: list[str], files: dict[str, str], cancel: threading.Event | None,
        timings: dict[str, float], started: float,
    ) -> RunResult | None:
        """The run through the warm runner, or ``None``: run it cold (:attr:`cold_reason` says why)."""
        if not self.warm or self._warm.off:
            return None
        config = sorted({PurePosixPath(rel).name for rel in files} & CONFIG_FILES)
        if config:
            self.cold_reason = f"the candidate changes {config[0]}, which configures pytest"
            return None
        if not self._warm.lock.acquire(blocking=False):
            self.cold_reason = "another run holds the warm runner"
            return None
        try:
            mark = time.perf_counter()
            zygote = self._zygote(cancel)
            if zygote is None:
                return None
            starting = time.perf_counter() - mark
            result = None
            try:
                zygote.prepare_run_dir()
                result = self._run_in(zygote.run_dir, wanted, files, cancel, timings, started, zygote)
            finally:
                mark = time.perf_counter()
                try:
                    zygote.clean_runs()
                except OSError as exc:
                    zygote.retire(f"its runs folder could not be emptied: {exc}")
                timings["cleanup"] = time.perf_counter() - mark
            if result is not None:
                self.warm_runs += 1
                timings["pytest"] = timings.get("pytest", 0.0) + starting  # the runner's start-up is pytest's
            return result
        finally:
            self._warm.lock.release()

    def _zygote(self, cancel: threading.Event | None = None) -> Zygote | None:
        """The warm runner for this run's settings, started if need be; ``None`` where there is none."""
        state = self._warm
        in_force = self.in_force
        if in_force not in ("bubblewrap", "namespaces"):
            state.off = self.cold_reason = f"runs are not in a PID namespace here ({in_force})"
            return None
        key = (self.executable, in_force, self.limits, tuple(sorted(self.env.items())), self.pytest_args,
               state.warmup_extra)
        zygote = state.zygote
        if zygote is not None and (state.key != key or not zygote.alive):
            state.zygote = None
            zygote.close()
            zygote = None
        if zygote is None:
            if state.starts >= _MAX_ZYGOTE_STARTS:
                state.off = self.cold_reason = f"the warm runner was replaced {state.starts} times"
                return None
            state.starts += 1
            zygote = Zygote(self._zygote_spec(in_force), PLUGIN_FILE, PLUGIN_MODULE)
            try:
                zygote.start(cancel)
            except WarmUnavailable as exc:
                state.off = self.cold_reason = str(exc)
                return None
            except StartCancelled:
                state.starts -= 1
                self.cold_reason = "cancelled while the warm runner was starting"
                return None
            state.zygote, state.key = zygote, key
            self.warm_start_s += zygote.start_s
        return zygote

    def _zygote_spec(self, in_force: str) -> ZygoteSpec:
        limits = self.limits

        def prefix(runs: Path, plugin_dir: Path) -> tuple[str, ...]:
            if in_force == "bubblewrap":
                return self._bwrap(runs, (str(plugin_dir),), capabilities=True)
            return namespace_prefix(limits.network)

        warmup = ["-p", PLUGIN_MODULE, "--continue-on-collection-errors", "-q",
                  *absolute_options(self.pytest_args, self.workspace), *self._warm.warmup_extra]
        return ZygoteSpec(
            python=self.executable, workspace=self.workspace, mode=in_force, prefix=prefix,
            environment=self._environment, warmup_args=tuple(warmup), network=limits.network,
            processes=limits.processes, memory_bytes=limits.memory_bytes, file_bytes=limits.file_bytes,
            # A cold run would have had to start within its timeout too (with room for a loaded machine).
            start_timeout_s=limits.timeout_s + 30,
        )

    def _warm_job(self, zygote: Zygote, shadow: Path, args: list[str], env: dict[str, str],
                  pythonpath: list[Path], nproc: int) -> dict:
        bubblewrap = zygote.spec.mode == "bubblewrap"
        limits = self.limits
        return {
            "cwd": str(shadow),
            "env": {**env, **({"PWD": str(shadow)} if bubblewrap else {})},  # as bubblewrap sets it
            "argv": [str(zygote.plugin_path), *args], "args": args,
            "pythonpath": [str(p) for p in pythonpath],
            "limits": {"cpu": [limits.cpu_s, limits.cpu_s + 1], "memory": [limits.memory_bytes] * 2,
                       "file": [limits.file_bytes] * 2, "nproc": [nproc, nproc], "core": [0, 0]},
            # How the sandbox command reports a run killed by a signal: bubblewrap exits 128 + it,
            # unshare dies of it too.
            "signal_exit": "code" if bubblewrap else "signal",
            "results_variable": RESULTS_FD,
        }

    def _went_cold(self, record: dict) -> None:
        """A run's configuration asked for other plugins or another assertion mode than the zygote's:
        warm up once more with the run's choice, and go cold for good if that happens again."""
        state = self._warm
        self.cold_reason = f"the warm runner does not match this run: {record.get('reason', '')}"
        if state.adapted:
            state.off = self.cold_reason
            return
        state.adapted = True
        extra = [f"-p no:{name}".split(" ", 1) for name in record.get("blocked") or []]
        state.warmup_extra = (*state.warmup_extra, *(part for pair in extra for part in pair),
                              *((f"--assert={record['assertmode']}",) if record.get("assertmode") else ()))

    # ----------------------------------------------------------------- one run

    def _run_in(
        self, run_dir: Path, wanted: list[str], files: dict[str, str],
        cancel: threading.Event | None, timings: dict[str, float], started: float,
        zygote: Zygote | None = None,
    ) -> RunResult | None:
        shadow = run_dir / "ws"
        mark = time.perf_counter()
        shadow_copy(self.workspace, shadow, self.shadow)
        timings["shadow"] = time.perf_counter() - mark
        mark = time.perf_counter()
        apply_files(shadow, files)
        timings["apply"] = time.perf_counter() - mark
        if zygote is not None:
            clash = shadowed_module([p for p in (shadow, shadow / "src") if p.is_dir()], zygote.modules(),
                                    own=(PLUGIN_MODULE, ZYGOTE_MODULE))
            if clash:
                self.cold_reason = f"the workspace provides {clash}, which the warm runner has loaded"
                return None

        present = [w for w in wanted if (shadow / w.split("::", 1)[0]).exists()]
        lost = {w: f"test file not found: {w.split('::', 1)[0]}" for w in wanted if w not in present}
        finished = Finished(0, "", "", "")
        mark = time.perf_counter()
        if present:
            finished = self._pytest(run_dir, shadow, present, cancel, zygote)
            if finished is None:
                return None
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
        self, run_dir: Path, shadow: Path, wanted: list[str], cancel: threading.Event | None,
        zygote: Zygote | None = None,
    ) -> Finished | None:
        """pytest on the shadow copy: a fresh process (cold), or a child of the zygote (warm; ``None``
        when the zygote could not give the run a cold run's exact conditions: run it cold)."""
        if zygote is None:
            plugin_dir = run_dir / "plugin"
            plugin_dir.mkdir()
            shutil.copy(PLUGIN_FILE, plugin_dir / f"{PLUGIN_MODULE}.py")
            for folder in ("home", "tmp"):
                (run_dir / folder).mkdir()
        else:
            plugin_dir = zygote.plugin_dir
        (run_dir / "select.json").write_text(json.dumps(wanted), encoding="utf-8")
        # The whole suite: no paths at all, so pytest collects what a bare ``pytest`` would (testpaths).
        paths = [] if SUITE in wanted else list(dict.fromkeys(w.split("::", 1)[0] for w in wanted))
        args = [
            "-p", PLUGIN_MODULE,
            f"--editseq-select={run_dir / 'select.json'}",
            f"--rootdir={shadow}", "--continue-on-collection-errors", "-q",
            *self.pytest_args, "--", *paths,
        ]
        nproc = user_tasks() + self.limits.processes
        pythonpath = [p for p in (plugin_dir, shadow, shadow / "src") if p.is_dir()]
        if zygote is not None:
            watched = zygote.runs
            finished = zygote.execute(
                self._warm_job(zygote, shadow, args, self._environment(run_dir, pythonpath), pythonpath, nproc),
                timeout_s=self.limits.timeout_s, output_bytes=self.limits.output_bytes, cancel=cancel,
                watch=lambda: tree_bytes(watched, self.limits.disk_bytes) > self.limits.disk_bytes,
                results_bytes=_RESULTS_BYTES,
            )
            if finished is not None and first_record(finished.results).get("event") == COLD_EVENT:
                self._went_cold(first_record(finished.results))
                return None
            if finished is None:
                self.cold_reason = f"the warm runner was lost: {zygote.retired}"
            return finished
        command = [*self._prefix(run_dir), self.executable, str(plugin_dir / f"{PLUGIN_MODULE}.py"), *args]
        with pids_cgroup(self.limits.processes) as cgroup_procs:
            # The results channel: a pipe named only in an environment variable the plugin removes.
            channel, writer = os.pipe()
            env = {**self._environment(run_dir, pythonpath), RESULTS_FD: str(writer)}
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

    def _environment(self, run_dir: Path, pythonpath: list[Path]) -> dict[str, str]:
        """A clean environment: nothing of ours (tokens, keys, our virtualenv, a version manager's
        ``PYENV_*``) leaks into the tests. ``pythonpath``: the plugin's folder, the shadow copy and
        its ``src/``, those that exist (the warm runner starts with the plugin's folder only)."""
        bin_dir = os.path.dirname(self.executable)
        path = os.environ.get("PATH", os.defpath)
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{path}",
            "HOME": str(run_dir / "home"),
            "TMPDIR": str(run_dir / "tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath),
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
        return {k: v for k, v in env.items() if not k.startswith(SHIM_VARIABLES)}

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


class _WarmState:
    """A sandbox's warm runner and what it learned; kept apart so the finalizer does not hold the sandbox."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.zygote: Zygote | None = None
        self.key: tuple = ()
        self.starts = 0
        self.off = ""  # why runs no longer go warm
        self.adapted = False
        self.warmup_extra: tuple[str, ...] = ()

    def close(self) -> None:
        with self.lock:
            zygote, self.zygote = self.zygote, None
            if zygote is not None:
                zygote.close()


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
    """One run without keeping a :class:`Sandbox`; ``settings`` go to its constructor. Cold unless
    ``warm=True`` is among them: a warm runner pays off from the second run on."""
    settings.setdefault("warm", False)
    with Sandbox(workspace, **settings) as sandbox:
        return sandbox.run(test_ids, files, cancel=cancel)
