"""Failing tests as diagnostics, from the failure report the pytest plugin writes.

The report (:mod:`model_runtime.failure_report`, one schema for both sides)
names, per failing test, the function under test and the line that failed
there. Each becomes an error on that line with ``source: "pytest"``, the
test's location as ``relatedInformation``, and the test id in ``data`` so the
"fix" quick fix knows what to run. A failure with no known target is shown
on the test itself. Publishing compares with what was published last, so a
file whose tests now pass gets an empty list (its diagnostics clear).
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as t
from pygls.uris import from_fs_path

__all__ = ["report_diagnostics"]


def _line(number: int | None) -> t.Range:
    line = max((number or 1) - 1, 0)
    return t.Range(start=t.Position(line=line, character=0), end=t.Position(line=line + 1, character=0))


def report_diagnostics(report, root: Path) -> dict[str, list[t.Diagnostic]]:
    """``{uri: diagnostics}`` for every file the report blames (``report`` may be ``None``)."""
    out: dict[str, list[t.Diagnostic]] = {}
    for failure in report.failures if report is not None else ():
        test_uri = from_fs_path(str(root / failure.test_path))
        name = failure.node_id.rpartition("::")[2] or failure.node_id
        message = f"{name} failed: {failure.message}"
        if failure.expected is not None or failure.actual is not None:
            message += f" (expected {failure.expected}, got {failure.actual})"
        related = [t.DiagnosticRelatedInformation(
            location=t.Location(uri=test_uri, range=_line(failure.test_line)), message=f"test {failure.node_id}")]
        if failure.target_path:
            uri, where = from_fs_path(str(root / failure.target_path)), _line(failure.target_line)
        else:
            uri, where = test_uri, _line(failure.test_line)
        out.setdefault(uri, []).append(t.Diagnostic(
            range=where, message=message, severity=t.DiagnosticSeverity.Error, source="pytest",
            code=name, related_information=related,
            data={"test": failure.node_id, "function": failure.target_function, "path": failure.target_path},
        ))
    return out
