"""Synthetic bug data: CYCLE repair rows from single-edit mutants of the corpus's own functions.

``editseq corpus --bugs K`` breaks each kept function ``K`` times with
:func:`~model_runtime.edits.mutations.random_mutation` (operator, value,
variable and function misuse, excess and missing logic, drawn by the mix of
real bugs) and writes one repair row per mutant to ``bugs.jsonl``, in the
schema of ``editseq train cycle-collect``'s repair rows
(``model_runtime.training.cycle_data.REPAIR_FIELDS``), so ``editseq train
cycle --data bugs.jsonl`` trains on them as they are:

* ``faulty`` is the mutant, ``good`` the original function and ``edit_path``
  the ``cycle`` answer, the diff steps from one to the other
  (:func:`~model_runtime.edits.repair_diffs.repair_diffs`);
  ``instruction`` is the pair's instruction (the one the editor builds).
  Both codes are the definition alone, without the import lines that
  ``programs.jsonl`` puts in front: the refine loop and CYCLE collection show
  the model a function the same way, and the instruction already shows the
  module's imports as context. Methods are mutated as the standalone
  definitions ``programs.jsonl`` has; classes are not mutated.
* Only kept pairs are mutated, so every row has passed the corpus's size
  filters, duplicate checks and HumanEval decontamination; the mutant itself
  is checked for contamination again (a single edit could in principle
  complete a benchmark n-gram).
* **Feedback.** A function with executable checks (a validated doctest
  problem of ``problems.jsonl``) has every mutant run against the problem's
  tests in the sandbox, and the row carries the feedback a CYCLE collection
  run would give for that run (:func:`mutant_feedback`: one failing test, or
  ``timed out``). A mutant that still passes is an equivalent mutant as far
  as the tests can tell, and is dropped and counted. A function without
  checks cannot be run, so its rows carry :data:`NO_TESTS_FEEDBACK`, a fixed
  line that says so, and ``status: "not_run"``: an empty field would render
  as a bare ``# `` line under ``### Execution Failure:``, which reads like a
  cut prompt, and the existing collectors never write an empty feedback.
  Such rows teach repair from the code and the instruction alone; their
  equivalent mutants cannot be told apart and stay in.
* ``source`` is ``"mutation"``, ``good_from`` ``"original"``, ``task_id`` the
  pair's ``source`` (``stdlib/textwrap.py::indent``), and ``origin`` says
  ``kind`` and ``detail`` of the mutation, where the function came from
  (``from``) and whether tests ran (``checks``: ``"doctest"`` or ``None``).
  The row is made here (:func:`bug_row`) rather than by
  ``cycle_data.repair_row`` because ``corpus`` sits above ``training`` in the
  package order; the tests hold the two to the same fields, order and
  similarity.

Mutation is pure-Python libcst work (a parse, a walk that numbers the edit
sites, a walk that makes one), about 8 ms for a typical stdlib function and
30 ms at 60 lines, so it runs in the corpus's scan workers
(:func:`function_bugs`), seeded per function (seed and pair source), so the
rows do not depend on the number of workers. Functions over
:data:`DEFAULT_MAX_LINES` lines (``--bug-max-lines``) are not mutated: a
repair prompt holds the instruction *and* the whole faulty function, and
longer ones crowd the training length out.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from model_runtime.edits.repair_diffs import DEFAULT_CONTEXT, RepairDiffError, repair_diffs
from model_runtime.evaluation.problems import Execution
from model_runtime.prompting.formats import TIMEOUT_FEEDBACK

from .dedup import tokens

# libcst (mutations, and prompting.feedback through the instruction builder) is imported where it is
# needed, so that importing the corpus job stays cheap.

__all__ = [
    "BugReport",
    "BugSettings",
    "BugSkip",
    "DEFAULT_MAX_LINES",
    "FunctionBugs",
    "Mutant",
    "NO_TESTS_FEEDBACK",
    "bug_row",
    "definition",
    "function_bugs",
    "mutant_feedback",
    "similarity",
]

#: Longest function mutated, in lines (the definition without its imports).
DEFAULT_MAX_LINES = 40
#: The feedback of a row whose function has no tests to run (see the module docstring).
NO_TESTS_FEEDBACK = "No test output: this function has no tests to run."


class BugSkip:
    """Why a function gave no mutant, or a mutant no row (keys of :class:`BugReport`'s counters)."""

    # functions
    CLASS = "class"                          # a class pair: only functions and methods are mutated
    TOO_LARGE = "too-large"                  # over the line limit
    NO_MUTATION = "no-mutation-site"         # no edit site, or no edit that compiles
    DOES_NOT_PARSE = "does-not-parse"
    INTERNAL = "internal-error"              # libcst failed on it
    # mutants
    CONTAMINATED = "contaminated"            # the mutant shares an n-gram with HumanEval
    NOT_REPRESENTABLE = "not-representable"  # no cycle answer leads back (see repair_diffs)
    STILL_PASSES = "mutant-passes"           # the tests cannot tell it from the original
    NO_FEEDBACK = "no-feedback"              # a failed run with nothing to show the model


@dataclass(frozen=True, slots=True)
class BugSettings:
    """How many mutants a function gets, from which seed, up to what size (``editseq corpus --bugs``)."""

    per_function: int = 1
    seed: int = 0
    max_lines: int = DEFAULT_MAX_LINES
    #: Context lines of the repair diffs (as ``cycle-collect``).
    context: int = DEFAULT_CONTEXT

    def __post_init__(self) -> None:
        if self.per_function < 1 or self.max_lines < 1:
            raise ValueError("per_function and max_lines must be at least 1")


@dataclass(frozen=True, slots=True)
class Mutant:
    """One mutant of a function and its ``cycle`` answer (``None``: not representable)."""

    kind: str
    detail: str
    faulty: str
    edit_path: tuple[str, ...] | None
    similarity: float = 0.0


@dataclass(slots=True)
class FunctionBugs:
    """The mutants of one function (computed in a scan worker), or why it has none."""

    good: str = ""
    mutants: list[Mutant] = field(default_factory=list)
    skip: str | None = None


def similarity(a: str, b: str) -> float:
    """``cycle_data.similarity``: ``SequenceMatcher.ratio`` over word and punctuation tokens."""
    return SequenceMatcher(None, tokens(a), tokens(b), autojunk=False).ratio()


def definition(program: str) -> tuple[str, str] | None:
    """``(code, "function" | "class")``: a ``programs.jsonl`` program's definition without the imports
    in front (from its first decorator or ``def`` line on); ``None`` if it does not parse as one."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError):
        return None
    if not tree.body:
        return None
    node = tree.body[-1]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return None
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    code = "\n".join(program.split("\n")[start - 1:]).strip("\n")
    if not code.startswith(("def ", "async ", "class ", "@")):  # line breaks ast counts and split() does not
        return None
    return code, "class" if isinstance(node, ast.ClassDef) else "function"


def function_bugs(program: str, key: str, settings: BugSettings) -> FunctionBugs:
    """Up to ``settings.per_function`` distinct mutants of the function in ``program``.

    ``key`` (the pair's source) seeds the draws together with the seed, so a
    function gets the same mutants whichever worker makes them and in
    whatever order. Draws that repeat an earlier mutant are drawn again, up to
    three draws a wanted mutant.
    """
    from model_runtime.edits.mutations import random_mutation

    found = definition(program)
    if found is None:
        return FunctionBugs(skip=BugSkip.DOES_NOT_PARSE)
    code, what = found
    if what == "class":
        return FunctionBugs(code, skip=BugSkip.CLASS)
    if code.count("\n") + 1 > settings.max_lines:
        return FunctionBugs(code, skip=BugSkip.TOO_LARGE)
    rng = random.Random(f"bugs:{settings.seed}:{key}")
    result = FunctionBugs(code)
    seen: set[str] = set()
    for _ in range(3 * settings.per_function):
        mutation = random_mutation(code, rng)
        if mutation is None:
            break
        if mutation.source in seen:
            continue
        seen.add(mutation.source)
        faulty = mutation.source
        try:
            path: tuple[str, ...] | None = tuple(repair_diffs(faulty, code, context=settings.context))
        except RepairDiffError:
            path = None
        result.mutants.append(Mutant(mutation.kind, mutation.detail, faulty, path, round(similarity(faulty, code), 4)))
        if len(result.mutants) == settings.per_function:
            break
    if not result.mutants:
        result.skip = BugSkip.NO_MUTATION
    return result


def mutant_feedback(execution: Execution, run, max_tokens: int | None = None) -> str:
    """The feedback CYCLE collection (``cycle_data.record_run``) gives a failed run; ``""`` for a pass.

    ``max_tokens`` defaults to collection's budget (``prompting.feedback.DEFAULT_MAX_TOKENS``).
    """
    from model_runtime.prompting.feedback import DEFAULT_MAX_TOKENS, execution_feedback

    if execution.passed:
        return ""
    if execution.status == "timeout":
        return TIMEOUT_FEEDBACK
    return execution_feedback(run, max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens)


def bug_row(*, task_id: str, instruction: str, good: str, mutant: Mutant, feedback: str, status: str,
            checks: str | None) -> dict:
    """A ``bugs.jsonl`` row: a ``cycle-collect`` repair row (same fields, same order)."""
    if mutant.edit_path is None:
        raise ValueError("a mutant without a cycle answer has no row")
    return {
        "kind": "repair", "source": "mutation", "task_id": task_id, "instruction": instruction,
        "faulty": mutant.faulty, "feedback": feedback, "good": good, "edit_path": list(mutant.edit_path),
        "status": status, "good_from": "original", "similarity": mutant.similarity,
        "origin": {"kind": mutant.kind, "detail": mutant.detail, "from": task_id, "checks": checks},
    }


# --------------------------------------------------------------------------- counts


@dataclass(slots=True)
class BugReport:
    """What the bug stage did; ``report.json``'s ``bugs`` section is :meth:`as_dict`."""

    per_function: int = 0
    max_lines: int = DEFAULT_MAX_LINES
    #: Kept pairs offered for mutation, those skipped by reason, and those mutated.
    functions: int = 0
    functions_skipped: Counter = field(default_factory=Counter)
    functions_mutated: int = 0
    #: Mutated functions that gave fewer distinct mutants than asked for.
    fewer_than_asked: int = 0
    #: Distinct mutants made, and dropped by reason; each one left is a row.
    mutants: int = 0
    mutants_dropped: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    with_feedback: int = 0
    without_feedback: int = 0
    #: Statuses of the mutants' sandbox runs (``passed`` are the dropped equivalent mutants).
    sandbox: Counter = field(default_factory=Counter)
    #: Seconds of mutation work summed over the scan workers, and of the sandbox runs.
    mutation_seconds: float = 0.0
    sandbox_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.mutants - sum(self.mutants_dropped.values())

    def as_dict(self) -> dict:
        from model_runtime.edits.mutations import KINDS

        rate = self.rows / self.mutation_seconds if self.mutation_seconds else None
        return {
            "rows": self.rows,
            "kinds": {kind: self.kinds.get(kind, 0) for kind in KINDS},
            "feedback": {"with": self.with_feedback, "without": self.without_feedback},
            "functions": {"in": self.functions, "skipped": _reasons(self.functions_skipped, (
                BugSkip.CLASS, BugSkip.TOO_LARGE, BugSkip.NO_MUTATION)),
                "mutated": self.functions_mutated, "fewer_than_asked": self.fewer_than_asked},
            "mutants": {"in": self.mutants, "dropped": _reasons(self.mutants_dropped, (
                BugSkip.CONTAMINATED, BugSkip.NOT_REPRESENTABLE, BugSkip.STILL_PASSES)), "kept": self.rows},
            "sandbox": dict(sorted(self.sandbox.items())),
            "per_function": self.per_function,
            "max_lines": self.max_lines,
            "seconds": {"mutation_cpu": round(self.mutation_seconds, 2), "sandbox": round(self.sandbox_seconds, 2)},
            "rows_per_mutation_cpu_second": round(rate, 1) if rate is not None else None,
        }

    def line(self) -> str:
        """The CLI's one-line summary."""
        from model_runtime.edits.mutations import KINDS

        kinds = ", ".join(f"{kind} {self.kinds.get(kind, 0)}" for kind in KINDS)
        skipped = Counter(self.functions_skipped) + Counter(self.mutants_dropped)
        skips = ", ".join(f"{reason} {n}" for reason, n in sorted(skipped.items()) if n) or "none"
        return (f"bugs: {self.rows} rows from {self.functions_mutated} of {self.functions} functions ({kinds}); "
                f"{self.with_feedback} with test feedback, {self.without_feedback} without; skipped: {skips}")


def _reasons(counter: Counter, always: Sequence[str]) -> dict[str, int]:
    """The counter as a dict, with the usual reasons present (0) even when nothing was dropped."""
    return {**{reason: 0 for reason in always}, **dict(sorted(counter.items()))}
