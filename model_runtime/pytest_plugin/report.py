"""From pytest's reports to the failure report file: one :class:`TestFailure` per failing test, merged.

Kept apart from :mod:`model_runtime.sandbox.failure_report` because it needs pytest
(and the feedback module), while the language server reads the report
without either.

A run of a subset (``--lf``, ``-k``, one file) must not erase what it did not
run: the new report is this run's results plus the earlier report's entries
for tests this run did not touch, as long as their test file still exists.
A collection error of a module is dropped once any test of that module ran.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Collection, Mapping, Iterator
from pathlib import Path

import pytest

from model_runtime.sandbox.pytest_json_plugin import MAX_TRACEBACK, crash_of, trim_text
from model_runtime.sandbox.failure_report import FailureReport, TestFailure, read_report, report_path, write_report

__all__ = ["failure_of", "merge", "save"]


def failure_of(root: Path, report: pytest.TestReport | pytest.CollectReport) -> TestFailure:
    """The report entry for a failed test phase or collection (details from ``report.editseq`` if any)."""
    from model_runtime.prompting.feedback import case_feedback
    from model_runtime.sandbox.runner import CaseResult

    details = getattr(report, "editseq", None) or {}
    crash = crash_of(report)
    phase = getattr(report, "when", "collect")
    target = details.get("target") or (None, None, None)
    case = CaseResult(
        node_id=report.nodeid, outcome="failed" if phase == "call" else "error", phase=phase,
        message=crash["message"], file=_relative(root, crash["path"]), line=crash["line"],
        statement=details.get("statement", ""), expected=details.get("expected"), actual=details.get("actual"),
        traceback=trim_text(report.longreprtext, MAX_TRACEBACK),
    )
    test_path, test_line = _test_location(root, report, crash)
    return TestFailure(
        node_id=report.nodeid, test_path=test_path, test_line=test_line, message=crash["message"],
        target_path=target[0], target_function=target[1], target_line=target[2],
        expected=case.expected, actual=case.actual, feedback=case_feedback(case), phase=phase,
    )


def _test_location(root: Path, report, crash: Mapping) -> tuple[str, int]:
    """The test's file and ``def`` line; for a collection error, the module and the error's line in it."""
    location = getattr(report, "location", None)
    if location is not None:
        return Path(location[0]).as_posix(), (location[1] or 0) + 1
    path = report.nodeid.split("::", 1)[0]
    inside = _relative(root, crash["path"]) == path
    return path, crash["line"] if inside and crash["line"] else 1


def _relative(root: Path, path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path


def merge(root: Path, previous: FailureReport | None, run: FailureReport, ran: Collection[str]) -> FailureReport:
    """``run`` (this run's results) plus what ``previous`` says about tests this run left alone."""
    if previous is None or Path(previous.root) != root.resolve():
        return run
    failed = {f.node_id for f in run.failures}
    files = {node.split("::", 1)[0] for node in (*ran, *failed)}

    def untouched(node_id: str, collect_error: bool = False) -> bool:
        path = node_id.split("::", 1)[0]
        if node_id in ran or node_id in failed or not (root / path).exists():
            return False
        return not (collect_error and path in files)

    kept = [f for f in previous.failures if untouched(f.node_id, f.phase == "collect")]
    still = [p for p in previous.passed if untouched(p)]
    return FailureReport.new(root, [*run.failures, *kept], [*run.passed, *still])


def save(root: Path, run: FailureReport, ran: Collection[str], config: pytest.Config) -> None:
    """Merge and write the report; a workspace we cannot write to costs a warning line, not the run.

    Two test runs finishing at once would each read the old report and the
    second write would drop the first's failures: the read-merge-write holds
    an exclusive lock on a file beside the report.
    """
    try:
        with _locked(report_path(root).with_name("report.lock")):
            write_report(root, merge(root, read_report(root), run, ran))
    except OSError as exc:
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"editseq: could not write the failure report: {exc}", yellow=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
