"""The repair benchmark behind ``editseq eval repair``: the refine loop against a no-model baseline.

A benchmark problem is a buggy function with tests, in HumanEvalPack's
schema (``task_id``, ``declaration``, ``buggy_solution``, ``test``,
``entry_point``): it is *fixed* when ``declaration + solution`` passes the
problem's ``check(entry_point)``. :func:`read_problems` reads such a file
(HumanEvalPack's own ``test`` ends by calling ``check(...)``; that call is
dropped and made by the test instead); :func:`build_mutants` makes problems
from HumanEval's canonical solutions instead, one random single-edit mutation
(:func:`~model_runtime.edits.mutations.random_mutation`) at a time, keeping
only mutants that change the body alone and fail the tests.

Every problem gets two arms, each in a fresh two-file workspace
(``solution.py``, ``test_solution.py`` with a pytest test calling
``check``; :func:`~.problems.problem_files`) and the sandbox the run seam
makes (:func:`~model_runtime.run.engine.make_sandbox`):

- **model**: :func:`model_runtime.run.engine.refine`, the exact loop
  ``editseq refine`` runs, with the :class:`~model_runtime.run.config.RunConfig`'s
  rounds, candidates and sampling. Round 0 runs the buggy code; each repair
  round shows the model the best program and its first failing assertion.
- **baseline** (no model): the buggy function's own single-edit
  mutations (:func:`~model_runtime.edits.mutations.mutations`, in their
  fixed order; most kinds are their own inverse, so they include the
  edits that undo a single-edit bug), each run until one is green.

Test runs are counted the same way in both arms: the first is the buggy code
as it is (round 0), so the budget is ``1 + rounds * candidates`` runs per
problem and the baseline tries at most ``rounds * candidates`` mutations.
The model's loop may spend fewer: candidates that copy the code back or
repeat a program are not run, and it stops after two rounds without a
better candidate (with one test per problem, a candidate is better only when
it is green). A *test run* is one pytest process in the sandbox.

``fixed_by_round[r]`` is the fraction fixed by the end of round ``r``; the
baseline's is the fraction fixed within the runs the model may spend by
then (``1 + r * candidates``). The backend is shared by the worker threads:
backends are thread-safe (in-process generation is serialised by the
model's lock), so with a local model the workers overlap tests, not
generation, and a problem's seconds include waiting for the model.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from model_runtime.backends.base import Backend
from model_runtime.errors import EditseqError
from model_runtime.run.config import RunConfig

from .problems import DEFAULT_TIMEOUT_S, SANDBOX_ENV, TEST_ID, Executor, Problem, classify, problem_files
from .run import CountingBackend

__all__ = [
    "ARM_KEYS",
    "ArmResult",
    "BUG_TYPES",
    "FILES",
    "MutantSet",
    "RepairInputError",
    "RepairOutcome",
    "RepairProblem",
    "RepairReport",
    "build_mutants",
    "evaluate_repair",
    "parse_problem",
    "read_problems",
    "repair_baseline",
    "repair_with_model",
    "score",
    "strip_check_call",
    "summary",
    "write_report",
]

#: The files a repair benchmark writes into its ``--out`` folder (``problems.jsonl`` only for mutants).
FILES = ("summary.json", "results.jsonl", "table.md", "repair.png")
#: HumanEvalPack's ``bug_type`` values, as the mutation kinds of :mod:`model_runtime.edits.mutations`.
BUG_TYPES = {"missing logic": "missing", "excess logic": "excess", "value misuse": "value",
             "operator misuse": "operator", "variable misuse": "variable", "function misuse": "function"}
#: The keys of each arm's figures in ``summary.json`` (the model's at the top level, the baseline's under ``baseline``).
ARM_KEYS = ("fixed", "fixed_count", "fixed_by_round", "fixed_within_runs", "test_runs", "test_runs_mean", "tokens",
            "seconds_median", "seconds_total", "by_kind", "stop_reasons", "errors")
REQUIRED = ("task_id", "declaration", "buggy_solution", "test", "entry_point")
#: Draws of :func:`build_mutants` per problem and pass (a draw that changes the
#: declaration or repeats a mutant is drawn again), and per problem in all.
DRAWS_PER_PASS = 4
DRAWS_PER_PROBLEM = 32

Progress = Callable[[int], None]


class RepairInputError(EditseqError, ValueError):
    """A problems file that cannot be used: not JSON, a missing or empty field, code that does not parse."""


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class RepairProblem:
    """A buggy function and its tests (``test`` defines ``check(candidate)`` and does not call it).

    ``kind`` and ``detail`` say what the bug is (a mutation's kind and edit,
    or HumanEvalPack's ``bug_type``); ``canonical_solution`` is a known fix, if any.
    """

    task_id: str
    declaration: str
    buggy_solution: str
    test: str
    entry_point: str
    kind: str = ""
    detail: str = ""
    canonical_solution: str = ""

    @property
    def buggy_program(self) -> str:
        return self.declaration + self.buggy_solution

    def humaneval(self) -> Problem:
        """As a HumanEval :class:`~.problems.Problem`, for :func:`~.problems.problem_files` and the executor."""
        return Problem(self.task_id, self.declaration, self.entry_point, self.test, self.canonical_solution)

    def to_json(self) -> dict:
        """HumanEvalPack's schema: ``test`` calls ``check`` at its end again, so the row stands alone."""
        row = {name: getattr(self, name) for name in ("task_id", "declaration", "buggy_solution",
                                                      "canonical_solution", "entry_point")}
        row["test"] = self.test.rstrip("\n") + f"\n\n\ncheck({self.entry_point})\n"
        row["bug_type"], row["detail"] = self.kind, self.detail
        return row


def strip_check_call(test: str) -> str:
    """``test`` without its top-level ``check(...)`` calls (HumanEvalPack's end with one).

    The workspace's pytest test imports the solution and calls ``check``
    itself; a call at import time would run before there is anything to check.
    Raises ``SyntaxError`` for a test that does not parse.
    """
    tree = ast.parse(test)
    lines = test.splitlines(keepends=True)
    for node in reversed(tree.body):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(
                node.value.func, ast.Name) and node.value.func.id == "check":
            del lines[node.lineno - 1: node.end_lineno]
    return "".join(lines).rstrip() + "\n"


def parse_problem(row: object, where: str = "problem") -> RepairProblem:
    """One HumanEvalPack-schema row as a :class:`RepairProblem`; :class:`RepairInputError` names ``where``."""
    if not isinstance(row, dict):
        raise RepairInputError(f"{where}: need a JSON object with {', '.join(REQUIRED)}")
    missing = [name for name in REQUIRED if not isinstance(row.get(name), str)]
    if missing:
        raise RepairInputError(f"{where}: missing or not a string: {', '.join(missing)} "
                               f"(HumanEvalPack's schema: {', '.join(REQUIRED)})")
    task_id, entry_point = row["task_id"].strip(), row["entry_point"].strip()
    if not task_id or not entry_point.isidentifier():
        raise RepairInputError(f"{where}: need a task_id and an entry_point that is a function name")
    program = row["declaration"] + row["buggy_solution"]
    try:
        tree = ast.parse(program)
    except SyntaxError as exc:
        raise RepairInputError(f"{where} ({task_id}): declaration + buggy_solution does not parse: "
                               f"line {exc.lineno}: {exc.msg}") from None
    if not any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point
               for node in tree.body):
        raise RepairInputError(f"{where} ({task_id}): declaration + buggy_solution defines no function "
                               f"`{entry_point}` (the entry_point)")
    try:
        test = strip_check_call(row["test"])
    except SyntaxError as exc:
        raise RepairInputError(f"{where} ({task_id}): the test does not parse: line {exc.lineno}: "
                               f"{exc.msg}") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "check" for node in ast.parse(test).body):
        raise RepairInputError(f"{where} ({task_id}): the test defines no check(candidate) function")
    bug = str(row.get("bug_type") or row.get("kind") or "")
    solution = row.get("canonical_solution")
    return RepairProblem(task_id, row["declaration"], row["buggy_solution"], test, entry_point,
                         kind=BUG_TYPES.get(bug, bug), detail=str(row.get("detail") or ""),
                         canonical_solution=solution if isinstance(solution, str) else "")


def read_problems(path: str | Path, limit: int | None = None) -> list[RepairProblem]:
    """The problems of a HumanEvalPack-schema file: JSON Lines, or one JSON array; the first ``limit``.

    Raises :class:`RepairInputError` naming the line (or item) of a bad
    problem, a repeated task id or an empty file; ``OSError`` if unreadable.
    """
    text = Path(path).read_text(encoding="utf-8")
    rows: list[tuple[str, object]] = []
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RepairInputError(f"{path}: not JSON: {exc}") from None
        rows = [(f"{path}: item {i}", item) for i, item in enumerate(items, 1)]
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise RepairInputError(f"{path}:{number}: not a JSON object: {exc}") from None
    problems, seen = [], set()
    for where, row in rows:
        problem = parse_problem(row, where)
        if problem.task_id in seen:
            raise RepairInputError(f"{where}: task_id {problem.task_id!r} appears twice")
        seen.add(problem.task_id)
        problems.append(problem)
    if not problems:
        raise RepairInputError(f"{path}: no problems")
    return problems[:limit] if limit is not None else problems


# --------------------------------------------------------------------------- mutants


@dataclass(slots=True)
class MutantSet:
    """What :func:`build_mutants` made: the problems, and what it drew, ran and dropped on the way."""

    problems: list[RepairProblem]
    requested: int
    seed: int
    drawn: int = 0
    checked: int = 0
    #: Mutants that passed the tests (equivalent, or the tests miss the change): dropped.
    passing: int = 0
    #: Draws that touched the declaration (signature, docstring, a helper) or repeated a mutant: redrawn.
    redrawn: int = 0

    @property
    def found(self) -> int:
        return len(self.problems)

    def to_json(self) -> dict:
        kinds: dict[str, int] = {}
        for problem in self.problems:
            kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
        return {"requested": self.requested, "found": self.found, "seed": self.seed, "drawn": self.drawn,
                "checked": self.checked, "passing_dropped": self.passing, "redrawn": self.redrawn,
                "kinds": dict(sorted(kinds.items()))}


def build_mutants(problems: Sequence[Problem], n: int, seed: int, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                  workers: int = 2, python: str | None = None) -> MutantSet:
    """``n`` bugs made from ``problems``' canonical solutions, the same ones for the same ``seed``.

    Passes over ``problems`` in order, drawing one mutant of each (at most
    :data:`DRAWS_PER_PASS` draws a pass, :data:`DRAWS_PER_PROBLEM` in all) with
    ``random.Random(seed)``, and keeps, in that order, those that fail the
    tests in the sandbox, until ``n`` are kept or no problem has draws left
    (then fewer: :attr:`MutantSet.found`). Only the body may change: a mutant
    whose text before it (imports, helpers, signature, docstring) changed is
    drawn again. Which mutants are kept depends on the seed alone, not on
    ``workers`` (runs are checked in draw order).
    """
    if n < 1:
        raise ValueError(f"the number of mutants must be at least 1, got {n}")
    result = MutantSet([], n, seed)
    draws = _draw_mutants(problems, random.Random(seed), result)
    with Executor(timeout_s, workers, python) as executor, executor.pool() as pool:
        while result.found < n:
            batch = [item for _, item in zip(range(max(workers, n - result.found)), draws)]
            if not batch:
                break
            futures = [pool.submit(executor.run, problem, mutation.source) for problem, mutation in batch]
            for (problem, mutation), future in zip(batch, futures):
                execution = future.result()
                result.checked += 1
                if result.found >= n:
                    continue
                if execution.passed:
                    result.passing += 1
                    continue
                count = sum(p.task_id.startswith(problem.task_id + "/") for p in result.problems)
                result.problems.append(RepairProblem(
                    f"{problem.task_id}/mutant{count + 1}", problem.prompt, mutation.source[len(problem.prompt):],
                    strip_check_call(problem.test), problem.entry_point, kind=mutation.kind,
                    detail=mutation.detail, canonical_solution=problem.canonical_solution,
                ))
    return result


def _draw_mutants(problems: Sequence[Problem], rng: random.Random, result: MutantSet) -> Iterator:
    """``(problem, mutation)`` pairs, one per problem and pass, until no problem has draws left."""
    from model_runtime.edits.mutations import random_mutation

    left = {p.task_id: DRAWS_PER_PROBLEM for p in problems}
    seen: dict[str, set[str]] = {p.task_id: set() for p in problems}
    while any(left.values()):
        for problem in problems:
            source = problem.canonical_program
            for _ in range(min(DRAWS_PER_PASS, left[problem.task_id])):
                left[problem.task_id] -= 1
                result.drawn += 1
                mutation = random_mutation(source, rng)
                if mutation is None:  # nothing in this function can be mutated
                    left[problem.task_id] = 0
                    break
                if not mutation.source.startswith(problem.prompt) or mutation.source in seen[problem.task_id]:
                    result.redrawn += 1
                    continue
                seen[problem.task_id].add(mutation.source)
                yield problem, mutation
                break


# --------------------------------------------------------------------------- running a problem


@dataclass(slots=True)
class ArmResult:
    """One arm on one problem.

    ``round`` (model) is the round of the green candidate, 0 when the buggy
    code passed as it was; ``runs_to_fix`` is the test runs spent when the
    first green run ended (both arms). ``stop`` is the model loop's stop
    reason, or the baseline's: ``green``, ``budget`` (runs spent) or
    ``exhausted`` (no single edit left). ``fix`` is the model's diff, or the
    baseline's fixing mutation (``kind: detail``).
    """

    fixed: bool = False
    round: int | None = None
    runs_to_fix: int | None = None
    test_runs: int = 0
    tokens: int = 0
    seconds: float = 0.0
    stop: str = ""
    fix: str = ""
    error: str = ""


@contextlib.contextmanager
def _workspace(problem: RepairProblem, timeout_s: float) -> Iterator[Path]:
    """A fresh folder holding the problem's ``solution.py`` (the buggy code) and ``test_solution.py``."""
    with tempfile.TemporaryDirectory(prefix="editseq-repair-") as folder:
        for name, text in problem_files(problem.humaneval(), problem.buggy_program, timeout_s).items():
            Path(folder, name).write_text(text, encoding="utf-8")
        yield Path(folder)


def _sandboxed(config: RunConfig) -> RunConfig:
    """``config`` with the evaluation's sandbox variables (no third-party pytest plugins) under its own."""
    return dataclasses.replace(config, sandbox_env={**SANDBOX_ENV, **config.sandbox_env})


def _passes(sandbox, problem: RepairProblem, program: str, cancel: threading.Event | None) -> bool:
    run = sandbox.run([TEST_ID], {"solution.py": program}, cancel=cancel)
    return classify(problem.task_id, run).passed


def score(problem: RepairProblem, solution: str, *, config: RunConfig | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether ``declaration + solution`` fixes ``problem``: its tests pass in the benchmark's sandbox."""
    from model_runtime.run.engine import make_sandbox

    with _workspace(problem, timeout_s) as root:
        sandbox = make_sandbox(_sandboxed(config or RunConfig()), root)
        return _passes(sandbox, problem, problem.declaration + solution, None)


def repair_baseline(problem: RepairProblem, config: RunConfig, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                    cancel: threading.Event | None = None) -> ArmResult:
    """The no-model arm: the buggy code, then its single-edit mutations in order, until green.

    At most ``1 + config.rounds * config.candidates`` test runs, the first
    being the buggy code itself; mutations that change the declaration are
    skipped (the body is what is broken).
    """
    from model_runtime.edits.mutations import mutations
    from model_runtime.run.engine import make_sandbox

    budget = 1 + config.rounds * config.candidates
    arm, started = ArmResult(stop="exhausted"), time.perf_counter()
    with _workspace(problem, timeout_s) as root:
        sandbox = make_sandbox(_sandboxed(config), root)
        arm.test_runs = 1
        if _passes(sandbox, problem, problem.buggy_program, cancel):
            arm.fixed, arm.runs_to_fix, arm.stop = True, 1, "green"
        else:
            for mutation in mutations(problem.buggy_program):
                if not mutation.source.startswith(problem.declaration):
                    continue
                if arm.test_runs >= budget:
                    arm.stop = "budget"
                    break
                if cancel is not None and cancel.is_set():
                    arm.stop = "cancelled"
                    break
                arm.test_runs += 1
                if _passes(sandbox, problem, mutation.source, cancel):
                    arm.fixed, arm.runs_to_fix, arm.stop = True, arm.test_runs, "green"
                    arm.fix = f"{mutation.kind}: {mutation.detail}"
                    break
    arm.seconds = round(time.perf_counter() - started, 3)
    return arm


def repair_with_model(problem: RepairProblem, config: RunConfig, backend: Backend, *,
                      timeout_s: float = DEFAULT_TIMEOUT_S, cancel: threading.Event | None = None) -> ArmResult:
    """The model arm: :func:`model_runtime.run.engine.refine` on the problem's workspace, as ``editseq refine``."""
    from model_runtime.refine.target import RefineError
    from model_runtime.run.engine import refine

    arm, counter, started = ArmResult(), CountingBackend(backend), time.perf_counter()
    with _workspace(problem, timeout_s) as root:
        try:
            result = refine(_sandboxed(config), counter, root, "solution.py", problem.entry_point, [TEST_ID],
                            cancel=cancel)
        except RefineError as exc:  # this problem cannot be run; the others still can
            arm.error, arm.stop = str(exc), "error"
        else:
            arm.fixed, arm.stop = result.verified, result.reason
            ran = [c for record in result.trajectory for c in record.candidates if c.status == "tested"]
            arm.test_runs = len(ran)
            if result.verified:
                arm.round = result.best.round
                arm.runs_to_fix = 1 + next(i for i, c in enumerate(ran) if c.green)
                arm.fix = result.diff
    arm.tokens = counter.tokens
    arm.seconds = round(time.perf_counter() - started, 3)
    return arm


# --------------------------------------------------------------------------- the benchmark


@dataclass(slots=True)
class RepairOutcome:
    """One problem's arms (``None``: that arm was not run)."""

    problem: RepairProblem
    model: ArmResult | None = None
    baseline: ArmResult | None = None

    def to_json(self) -> dict:
        p = self.problem
        return {"task_id": p.task_id, "entry_point": p.entry_point, "kind": p.kind, "detail": p.detail,
                "buggy_solution": p.buggy_solution,
                "model": asdict(self.model) if self.model is not None else None,
                "baseline": asdict(self.baseline) if self.baseline is not None else None}


@dataclass(slots=True)
class RepairReport:
    """A finished benchmark: per-problem outcomes, the run's settings, what it cost."""

    outcomes: list[RepairOutcome]
    config: RunConfig
    settings: dict
    seconds: dict[str, float]
    mutants: MutantSet | None = None
    extra: dict = field(default_factory=dict)


def evaluate_repair(problems: Sequence[RepairProblem], config: RunConfig, backend: Backend | None = None, *,
                    baseline: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = 2,
                    progress: Progress | None = None) -> RepairReport:
    """Both arms on every problem (the model arm only with a ``backend``; the baseline unless told not).

    ``workers`` problems run at once, each in its own workspace; results come
    back in the order of ``problems``. Interrupting stops the runs under way.
    """
    if backend is None and not baseline:
        raise ValueError("nothing to run: no backend and no baseline")
    if workers < 1 or timeout_s <= 0:
        raise ValueError("workers must be at least 1 and the timeout positive")
    from concurrent.futures import ThreadPoolExecutor

    cancel = threading.Event()

    def one(problem: RepairProblem) -> RepairOutcome:
        outcome = RepairOutcome(problem)
        if backend is not None:
            outcome.model = repair_with_model(problem, config, backend, timeout_s=timeout_s, cancel=cancel)
        if baseline:
            outcome.baseline = repair_baseline(problem, config, timeout_s=timeout_s, cancel=cancel)
        if progress is not None:
            progress(1)
        return outcome

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="editseq-repair") as pool:
        futures = [pool.submit(one, problem) for problem in problems]
        try:
            outcomes = [future.result() for future in futures]
        except BaseException:
            cancel.set()
            for future in futures:
                future.cancel()
            raise
    settings = {"rounds": config.rounds, "candidates": config.candidates, "temperature": config.temperature,
                "top_p": config.top_p, "max_new_tokens": config.max_new_tokens, "seed": config.seed,
                "timeout_s": timeout_s, "workers": workers, "model": config.model if backend else None,
                "backend": config.backend if backend else None, "baseline": baseline}
    seconds = round(time.perf_counter() - started, 3)
    return RepairReport(outcomes, config, settings, {"repair": seconds, "total": seconds})


# --------------------------------------------------------------------------- the report


def _arm_summary(arms: list[ArmResult], problems: list[RepairProblem], rounds: int, candidates: int,
                 model: bool) -> dict:
    total = len(arms)
    budget = 1 + rounds * candidates

    def within(runs: int) -> float:
        return sum(a.runs_to_fix is not None and a.runs_to_fix <= runs for a in arms) / total

    if model:
        by_round = {str(r): sum(a.fixed and a.round is not None and a.round <= r for a in arms) / total
                    for r in range(rounds + 1)}
    else:  # the runs the model may have spent by the end of round r
        by_round = {str(r): within(1 + r * candidates) for r in range(rounds + 1)}
    by_kind: dict[str, dict] = {}
    for arm, problem in zip(arms, problems):
        entry = by_kind.setdefault(problem.kind or "unknown", {"problems": 0, "fixed": 0})
        entry["problems"] += 1
        entry["fixed"] += arm.fixed
    stops: dict[str, int] = {}
    for arm in arms:
        stops[arm.stop] = stops.get(arm.stop, 0) + 1
    return {
        "fixed": sum(a.fixed for a in arms) / total,
        "fixed_count": sum(a.fixed for a in arms),
        "fixed_by_round": by_round,
        "fixed_within_runs": {str(t): within(t) for t in range(1, budget + 1)},
        "test_runs": sum(a.test_runs for a in arms),
        "test_runs_mean": round(sum(a.test_runs for a in arms) / total, 3),
        "tokens": sum(a.tokens for a in arms),
        "seconds_median": round(statistics.median(a.seconds for a in arms), 3),
        "seconds_total": round(sum(a.seconds for a in arms), 3),
        "by_kind": {kind: {"problems": e["problems"], "fixed": e["fixed"] / e["problems"]}
                    for kind, e in sorted(by_kind.items())},
        "stop_reasons": dict(sorted(stops.items())),
        "errors": sum(bool(a.error) for a in arms),
    }


def summary(report: RepairReport) -> dict:
    """The ``summary.json`` object: the model arm's figures at the top, the baseline's under ``baseline``.

    Both arms have the same keys (``fixed``, ``fixed_by_round``,
    ``fixed_within_runs``, ``test_runs``, ``tokens``, ``seconds_median``,
    ``by_kind``, ...); the top-level ones are ``None`` when no model ran.
    """
    problems = [o.problem for o in report.outcomes]
    if not problems:
        raise ValueError("no problems were run")
    rounds, candidates = report.config.rounds, report.config.candidates
    model = baseline = None
    if all(o.model is not None for o in report.outcomes):
        model = _arm_summary([o.model for o in report.outcomes], problems, rounds, candidates, True)
    if all(o.baseline is not None for o in report.outcomes):
        baseline = _arm_summary([o.baseline for o in report.outcomes], problems, rounds, candidates, False)
    data = {"benchmark": "repair", "problems": len(problems)}
    data.update({key: model[key] if model else None for key in ARM_KEYS})
    data.update({
        "baseline": baseline,
        "budget": {"rounds": rounds, "candidates": candidates, "test_runs_per_problem": 1 + rounds * candidates},
        "kinds": dict(sorted(_count(p.kind or "unknown" for p in problems).items())),
        "mutants": report.mutants.to_json() if report.mutants is not None else None,
        "seconds": report.seconds,
        "settings": {**report.settings, **report.extra},
    })
    return data


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def write_report(report: RepairReport, out: str | Path) -> dict:
    """Write :data:`FILES` into ``out`` (created if needed), and ``problems.jsonl`` for mutants; the summary."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    data = summary(report)
    (folder / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    with open(folder / "results.jsonl", "w", encoding="utf-8") as handle:
        for outcome in report.outcomes:
            handle.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
    if report.mutants is not None:  # the bugs, reusable with --problems
        with open(folder / "problems.jsonl", "w", encoding="utf-8") as handle:
            for problem in report.mutants.problems:
                handle.write(json.dumps(problem.to_json(), ensure_ascii=False) + "\n")
    (folder / "table.md").write_text(markdown_table(data), encoding="utf-8")
    plot(data, folder / "repair.png")
    return data


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown_table(data: dict) -> str:
    """Each arm's fixed percentage by round and overall, with its test runs, tokens and time; then by kind."""
    rounds, runs = data["budget"]["rounds"], data["budget"]["test_runs_per_problem"]
    arms = [(f"model ({data['settings'].get('model')})", data if data["fixed"] is not None else None),
            ("baseline (single edits)", data["baseline"])]
    head = ["arm", "fixed %"] + [f"by round {r}" for r in range(rounds + 1)] + [
        "test runs (mean)", "tokens", "median s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, arm in arms:
        if arm is None:
            continue
        cells = [name, _percent(arm["fixed"])] + [_percent(arm["fixed_by_round"][str(r)])
                                                   for r in range(rounds + 1)]
        cells += [f"{arm['test_runs_mean']:.1f}", str(arm["tokens"]), f"{arm['seconds_median']:.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    kinds = ["", "| kind | problems | model fixed % | baseline fixed % |", "|---|---|---|---|"]
    for kind, count in data["kinds"].items():
        cells = [_percent(arm["by_kind"][kind]["fixed"]) if arm else "-" for _, arm in arms]
        kinds.append(f"| {kind} | {count} | {cells[0]} | {cells[1]} |")
    source = "mutants of HumanEval" if data["mutants"] else "problems from a file"
    note = (f"\n{data['problems']} {source}; budget {runs} test runs per problem (the buggy code, then "
            f"{rounds} rounds x {data['budget']['candidates']} candidates); the baseline's 'by round r' is "
            f"within 1 + r x candidates runs; timeout {data['settings'].get('timeout_s')} s per test run.\n")
    return "\n".join(rows + kinds) + "\n" + note


def plot(data: dict, path: Path) -> None:
    """Fixed % by round (the baseline at the model's runs by then), and fixed % by kind, both arms."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    try:
        arms = [("model", data if data["fixed"] is not None else None, "o"),
                ("baseline (single edits)", data["baseline"], "s")]
        for name, arm, marker in arms:
            if arm is None:
                continue
            curve = arm["fixed_by_round"]
            left.plot([int(r) for r in curve], [100 * v for v in curve.values()], marker=marker, label=name)
        left.set_xlabel(f"round (baseline: 1 + round x {data['budget']['candidates']} test runs)")
        left.set_ylabel("% of problems fixed")
        left.set_xticks(range(data["budget"]["rounds"] + 1))
        left.set_ylim(0, 100)
        left.set_title(f"Repair, {data['problems']} problems")
        left.grid(True, alpha=0.3)
        left.legend()
        kinds = list(data["kinds"])
        shown = [(name, arm) for name, arm, _ in arms if arm is not None]
        width = 0.8 / max(1, len(shown))
        for i, (name, arm) in enumerate(shown):
            right.bar([k + i * width for k in range(len(kinds))],
                      [100 * arm["by_kind"][kind]["fixed"] for kind in kinds], width=width, label=name)
        right.set_xticks([k + width * (len(shown) - 1) / 2 for k in range(len(kinds))])
        right.set_xticklabels([f"{kind}\n({data['kinds'][kind]})" for kind in kinds], fontsize=8)
        right.set_ylim(0, 115)  # room for the legend above full bars
        right.set_yticks(range(0, 101, 20))
        right.set_ylabel("% fixed")
        right.set_title("by kind of bug")
        right.grid(True, axis="y", alpha=0.3)
        right.legend(loc="upper center", ncols=max(1, len(shown)), fontsize=8)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
