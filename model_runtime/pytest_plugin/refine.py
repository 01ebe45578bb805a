"""``pytest --editseq-refine``: the refinement loop, headless, on what the run just found failing.

Failing tests are grouped by their function under test, so one loop sees all
the failures of a function at once (fixing one test at a time would let a fix
for one undo another). Each loop also runs the tests of the same files that
passed, so a verified fix is one that breaks nothing nearby. Tests without a
function under test in the workspace are listed, not refined: there is
nothing of the user's to edit.

Everything goes through the run seam (:mod:`model_runtime.run.engine`), the
same as ``editseq refine`` and the language server: the tests run in the
sandbox with the interpreter running pytest; the tree is written only with ``--editseq-apply``,
one verified fix at a time, atomically, and only if the file is still what
the loop started from. Fixes are applied as they come, so a later function of
the same file is refined on top of an earlier fix.

The model loads once, on the first function, and only here: a run that finds
nothing to refine never imports torch. With ``--editseq-backend openai`` the
model is served elsewhere (vLLM, or ``python -m model_runtime.backends.openai_server``)
and loading only checks that the endpoint answers and serves the model. A
model or endpoint that cannot be used is reported once, and every function
gets an ``error`` row.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_runtime import defaults
from model_runtime.errors import EditseqError
from model_runtime.run.config import RunConfig
from model_runtime.sandbox.failure_report import FailureReport

__all__ = ["RefineGroup", "RefineOutcome", "RefineSettings", "group_failures", "refine_report", "settings_from_config"]

#: How this front end spells the endpoint setting, for messages about an unreachable server.
ENDPOINT_OPTION = "--editseq-endpoint"


@dataclass(frozen=True)
class RefineSettings:
    """The ``--editseq-*`` options: the run's configuration, and whether to write verified fixes."""

    run: RunConfig
    apply: bool = False


@dataclass(frozen=True)
class RefineGroup:
    """One function to refine and its failing tests (the loop also keeps the tests that passed passing:
    ``--editseq-verify``)."""

    path: str
    function: str
    failing: tuple[str, ...]


@dataclass(frozen=True)
class RefineOutcome:
    """One row of the summary table. ``reason`` is the loop's stop reason, or ``error``."""

    group: RefineGroup
    verified: bool
    reason: str
    rounds: int = 0
    passed: int = 0
    total: int = 0
    applied: bool = False


#: What ``--editseq-verify`` keeps passing, for the summary line.
_KEPT = {"files": "the tests of their files", "suite": "the suite", "failing": "no other test"}


def settings_from_config(config: pytest.Config) -> RefineSettings:
    """Checked at configure time: a missing model, a bad backend or a bad number fails before any test runs.

    The endpoint itself is first contacted when refinement starts (a run with
    nothing to refine needs no server).
    """
    model = config.getoption("editseq_model") or config.getini("editseq_model").strip() or defaults.MODEL
    backend = config.getoption("editseq_backend") or config.getini("editseq_backend").strip() or defaults.BACKEND
    if backend not in defaults.BACKENDS:
        raise pytest.UsageError(f"editseq: the editseq_backend ini option must be one of "
                                f"{', '.join(defaults.BACKENDS)}, got {backend!r}")
    endpoint = config.getoption("editseq_endpoint") or config.getini("editseq_endpoint").strip() or defaults.ENDPOINT
    local = config.rootpath / model
    if backend == "transformers" and model != defaults.EMBEDDED_MODEL and not os.path.isabs(model) and local.exists():
        model = str(local)  # a folder relative to the rootdir; a served name is passed as given
    try:
        run = RunConfig(
            model=model, backend=backend, endpoint=endpoint, device=config.getoption("editseq_device"),
            rounds=config.getoption("editseq_rounds"), candidates=config.getoption("editseq_candidates"),
            max_new_tokens=config.getoption("editseq_max_new_tokens"),
            strategy=config.getoption("editseq_strategy"), verify=config.getoption("editseq_verify"), prompt_format=config.getoption("editseq_format"),
            temperature=config.getoption("editseq_temperature"), timeout=config.getoption("editseq_timeout"),
            # The interpreter running pytest runs the tests; the user's pytest variables and options are
            # passed on.
            python=sys.executable,
            pytest_args=sandbox_pytest_args(config.invocation_params.args, config.rootpath, config.inipath),
        )
    except EditseqError as exc:
        raise pytest.UsageError(f"editseq: {exc}") from None
    return RefineSettings(run=run, apply=config.getoption("editseq_apply"))


def group_failures(report: FailureReport) -> tuple[list[RefineGroup], list[str]]:
    """The functions to refine, and the failing tests that point at none."""
    failing: dict[tuple[str, str], list[str]] = {}
    orphans = []
    for failure in report.failures:
        if failure.target_path and failure.target_function and failure.phase != "collect":
            failing.setdefault((failure.target_path, failure.target_function), []).append(failure.node_id)
        else:
            orphans.append(failure.node_id)
    groups = [RefineGroup(path, function, tuple(nodes)) for (path, function), nodes in failing.items()]
    return groups, orphans


def refine_report(root: Path, report: FailureReport, settings: RefineSettings, terminal) -> list[RefineOutcome]:
    """Refine every group, print each verified diff and a summary table; apply if asked."""
    from model_runtime.run import engine

    groups, orphans = group_failures(report)
    if not groups and not orphans:
        return []
    terminal.write_sep("=", "editseq refine")
    for node in orphans:
        terminal.write_line(f"{node}: no function under test in the workspace, not refined")
    outcomes, backend, unusable = [], None, None
    try:
        for group in groups:
            terminal.write_line(f"{group.path}::{group.function}: refining for {len(group.failing)} failing "
                                f"test(s), keeping {_KEPT[settings.run.verify]} passing")
            if backend is None and unusable is None:
                try:  # the model loads (or the endpoint is checked) once, on the first function
                    backend = engine.open_backend(settings.run, endpoint_option=ENDPOINT_OPTION)
                except EditseqError as exc:
                    unusable = str(exc)
                    terminal.write_line(f"  error: {unusable}", red=True)
            if unusable is not None:  # said once; every function is an error row, not a retry
                outcomes.append(RefineOutcome(group, False, "error"))
                continue
            outcomes.append(_refine_one(root, group, settings, backend, terminal))
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    if outcomes:
        _table(terminal, outcomes)
    return outcomes


def _refine_one(root: Path, group: RefineGroup, settings: RefineSettings, backend, terminal) -> RefineOutcome:
    from model_runtime.run import engine

    def progress(event) -> None:
        if event.event == "round_finished":
            terminal.write_line(f"  round {event.round}: best {event.best_passed}/{event.total} passed")

    try:
        result = engine.refine(settings.run, backend, root, group.path, group.function, group.failing,
                               on_event=progress)
    except EditseqError as exc:
        terminal.write_line(f"  error: {exc}", red=True)
        return RefineOutcome(group, False, "error")
    counts = dict(rounds=result.rounds, passed=result.best.passed, total=result.best.total)
    if not result.verified or not result.diff:
        return RefineOutcome(group, result.verified, result.reason, **counts)
    terminal.write_line(result.diff)
    applied = False
    if settings.apply:
        applied, why = engine.apply_result(root, result)
        if not applied:
            terminal.write_line(f"  not applied: {why}", yellow=True)
    return RefineOutcome(group, True, result.reason, applied=applied, **counts)


def _table(terminal, outcomes: list[RefineOutcome]) -> None:
    """A plain-text table: one row per refined function."""
    header = ("function", "failing", "result", "rounds", "passed", "applied")
    rows = [header] + [
        (f"{o.group.path}::{o.group.function}", str(len(o.group.failing)),
         "verified" if o.verified else f"not verified ({o.reason})", str(o.rounds),
         f"{o.passed}/{o.total}", "yes" if o.applied else "no")
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    terminal.write_sep("-", "editseq refine summary")
    for row in rows:
        terminal.write_line("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    verified = sum(o.verified for o in outcomes)
    applied = sum(o.applied for o in outcomes)
    terminal.write_line(f"editseq: {verified}/{len(outcomes)} function(s) verified green, {applied} applied")


#: The options of the user's pytest command that the sandbox's pytest needs too, each with its value.
_PASSED_ON = ("-p", "-o", "--override-ini", "-W", "--pythonwarnings", "--import-mode")


def sandbox_pytest_args(args, root: Path | None = None, inifile: Path | None = None) -> tuple[str, ...]:
    """The options of ``args`` (the user's pytest command line) that change how tests load and run.

    ``-p no:asyncio`` or ``-o python_functions=check_*`` changed what the user's
    run collected but not the sandbox's, so a refine could see other tests.
    The configuration file the run used (``inifile``: found, or named by
    ``-c``) is named to the sandbox's pytest, relative to the workspace when it
    is inside it (the shadow copy has it there), so a ``-c ci/pytest.ini`` or
    an ini file above the rootdir reaches the sandbox. The rootdir itself is
    ``root``, the workspace the sandbox copies (a ``--rootdir`` is honoured that
    way). Paths and editseq's own options are not passed.
    """
    out, args = [], [str(a) for a in args]
    for i, arg in enumerate(args):
        for option in _PASSED_ON:
            if arg == option and i + 1 < len(args):
                out += [arg, args[i + 1]]
            elif arg.startswith(option + "=") or (len(option) == 2 and arg.startswith(option) and len(arg) > 2):
                out.append(arg)
    if inifile is not None:
        try:
            named = Path(inifile).resolve().relative_to(Path(root).resolve()).as_posix() if root else str(inifile)
        except ValueError:  # outside the workspace: by its absolute path (readable if the sandbox lets it be)
            named = str(inifile)
        out += ["-c", named]
    return tuple(out)
