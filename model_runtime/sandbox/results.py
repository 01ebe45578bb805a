"""What a run found: :class:`CaseResult` per test and :class:`RunResult` per run, read from the plugin's records.

Holds the result types (with the :data:`Outcome`, :data:`RunStatus` and
:data:`Phase` literals), :func:`read_records` (the JSON lines that
:mod:`.pytest_json_plugin` writes inside the sandbox), :class:`Results` (those
records folded into one :class:`CaseResult` per test, with the shadow copy's
paths taken out) and :func:`matches` (the plugin's rule for which tests a
requested id selects). Apart from the process and the shadow copy because it
is pure data: the feedback, evaluation and training code read these types
without running anything.

A run may die at any point (a timeout, a kill, an ``os._exit``), so the
records may stop mid-test: a test that started, had no failing phase and has
no teardown report is ``killed``; one that never started is ``not_run``; a
requested id that matched nothing is an ``error``, with its module's collection
error if there is one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "CaseResult",
    "Outcome",
    "Phase",
    "Results",
    "RunResult",
    "RunStatus",
    "matches",
    "parse_records",
    "read_records",
]

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed", "killed", "not_run"]
RunStatus = Literal["completed", "refused", "timeout", "cancelled", "killed", "crashed"]
Phase = Literal["collect", "setup", "call", "teardown"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One test's result; for a failure, where it failed and why.

    ``file`` is relative to the workspace when the crash is inside it
    (absolute otherwise, e.g. in a library); ``line`` is 1-based;
    ``statement`` is the source that raised (the whole ``assert`` statement;
    for a unittest assertion, the test's line that called it).
    ``expected``/``actual`` are what a failing assertion compared (a plain
    ``assert`` that pytest's rewriting saw, or a unittest assertion): the
    actual value's repr, and the expected value's repr, or for an assertion
    that is no equality the condition the actual value failed (``!= 2``,
    ``< 10``, ``in [1, 2]``). Which operand is which does not depend on their
    order (see :func:`~model_runtime.sandbox.pytest_json_plugin.failure_values`).
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


# --------------------------------------------------------------------------- reading the records


def read_records(path: Path, limit: int) -> list[dict]:
    """The plugin's JSON lines from a file (``--editseq-json``); a line cut off by a kill is ignored."""
    if not path.exists():
        return []
    with open(path, "rb") as file:
        return parse_records(file.read(limit))


def parse_records(data: bytes) -> list[dict]:
    """The plugin's JSON lines as the results channel delivered them; a cut-off line is ignored."""
    records = []
    for line in data.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


class Results:
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
        values = record.get("values")
        if not isinstance(values, dict):  # a plugin without roles: the conventional ``assert actual == expected``
            comparison = record.get("comparison") or {}
            equal = comparison.get("op") == "=="
            values = {"actual": comparison.get("left"), "expected": comparison.get("right")} if equal else {}
        path = crash.get("path")
        return CaseResult(
            node_id=node_id,
            outcome=outcome,
            phase=phase,
            message=self.unshadow(crash.get("message", "")),
            file=self.unshadow(path) if path else None,
            line=crash.get("line"),
            statement=record.get("statement", ""),
            actual=values.get("actual"),
            expected=values.get("expected"),
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


def matches(node_id: str, wanted: str) -> bool:
    """Same rule as the plugin's selection: an exact id, a parametrized variant, a container, or ``.`` (all)."""
    if node_id == wanted or wanted == ".":  # "." is the whole suite
        return True
    if "::" in wanted:
        return node_id.startswith((wanted + "::", wanted + "["))
    return node_id.startswith((wanted + "::", wanted.rstrip("/") + "/"))
