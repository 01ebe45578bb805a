"""Running HumanEval: one-shot sampling and refine rounds at an equal sample budget, or given samples.

Refinement is only worth its cost if it beats *resampling* with the same
compute (Olausson et al., notes §3), so both arms get the same number of
model samples per problem, ``n``, and each reports the tokens it generated:

- **one-shot**: ``n`` independent samples in the ``lintseq`` format from the
  HumanEvalPack-style instruction; each program is resolved from its diffs,
  completed with the prompt's imports and helpers, and run; pass@k is the
  unbiased estimate.
- **refine**: CYCLE chains (:func:`~model_runtime.refine.loop.refine`, one
  candidate a round, at most ``refine_rounds`` repairs) until the problem's
  tests pass or ``n`` samples are spent; a chain that gives up starts
  another with a new seed. ``solved_at`` is the number of samples spent when
  the first green program appeared, so "solved within s samples" is the
  refine arm's counterpart of one-shot pass@s. Chains are not independent
  draws, so the unbiased estimator does not apply to them.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from model_runtime import defaults
from model_runtime.backends.base import Backend, CandidateEvent, sampled_request

from .problems import (
    TEST_ID,
    Execution,
    Executor,
    Problem,
    SANDBOX_ENV,
    complete_program,
    default_ks,
    load_problems,
    pass_at_k,
    problem_files,
)

__all__ = [
    "EvalReport",
    "EvalSettings",
    "ProblemResult",
    "RefineArm",
    "Sample",
    "evaluate_model",
    "evaluate_samples",
    "humaneval_instruction",
    "read_samples",
]

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class EvalSettings:
    """What a model evaluation does. ``temperature == 0`` is greedy (then ``n > 1`` repeats itself)."""

    n: int = 1
    temperature: float = defaults.TEMPERATURE
    top_p: float = defaults.TOP_P
    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    refine_rounds: int = 0
    timeout_s: float = 3.0
    workers: int = 2
    seed: int = defaults.SEED
    #: Samples asked for in one generate call; bounds memory for large ``n``.
    batch: int = 16
    #: Token budget of the instruction (estimated); context is dropped first, as in the editor.
    instruction_tokens: int = 768
    ks: tuple[int, ...] = (1, 10, 100)
    #: The format the model writes in (``auto``: its profile; see ``defaults.PROMPT_FORMAT``).
    prompt_format: str = defaults.PROMPT_FORMAT

    def __post_init__(self) -> None:
        if self.n < 1 or self.batch < 1 or self.refine_rounds < 0 or self.workers < 1:
            raise ValueError("n, batch and workers must be >= 1 and refine_rounds >= 0")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout_s}")
        sampled_request(self, "")


@dataclass(slots=True)
class Sample:
    """One program checked: where it came from, its tokens, and how it did."""

    index: int
    program: str
    tokens: int = 0
    completion: str = ""
    status: str = "not_run"
    message: str = ""
    seconds: float = 0.0

    def take(self, execution: Execution) -> None:
        self.status, self.message, self.seconds = execution.status, execution.message, execution.seconds

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(slots=True)
class RefineArm:
    """The refine arm on one problem: samples and tokens spent, and when (if) it went green."""

    samples: int = 0
    tokens: int = 0
    chains: int = 0
    solved_at: int | None = None
    program: str = ""
    stop_reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ProblemResult:
    """Everything measured on one problem."""

    task_id: str
    samples: list[Sample] = field(default_factory=list)
    refine: RefineArm | None = None
    instruction: str = ""

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def correct(self) -> int:
        return sum(sample.passed for sample in self.samples)

    @property
    def tokens(self) -> int:
        return sum(sample.tokens for sample in self.samples)

    def pass_at(self, ks: Sequence[int]) -> dict[str, float]:
        return {str(k): pass_at_k(self.n, self.correct, k) for k in ks if k <= self.n}

    def to_json(self, ks: Sequence[int]) -> dict:
        row = {"task_id": self.task_id, "n": self.n, "correct": self.correct, "tokens": self.tokens,
               "pass_at_k": self.pass_at(ks), "samples": [asdict(s) for s in self.samples]}
        if self.instruction:
            row["instruction"] = self.instruction
        row["refine"] = asdict(self.refine) if self.refine is not None else None
        return row


@dataclass(slots=True)
class EvalReport:
    """A finished evaluation: per-problem results and what it cost."""

    results: list[ProblemResult]
    settings: dict
    seconds: dict[str, float]
    mode: str = "model"

    @property
    def ks(self) -> list[int]:
        n = min((r.n for r in self.results), default=1)
        return default_ks(n, self.settings.get("ks", (1, 10, 100)))

    def pass_at_k(self, ks: Sequence[int] | None = None) -> dict[str, float]:
        """Mean unbiased pass@k over problems, as fractions."""
        ks = self.ks if ks is None else ks
        return {str(k): sum(pass_at_k(r.n, r.correct, k) for r in self.results) / len(self.results)
                for k in ks}

    def refine_solved_within(self) -> dict[str, float] | None:
        """Fraction of problems the refine arm solved within s samples, for s = 1..n."""
        arms = [r.refine for r in self.results]
        if not arms or any(a is None for a in arms):
            return None
        n = self.settings["n"]
        return {str(s): sum(a.solved_at is not None and a.solved_at <= s for a in arms) / len(arms)
                for s in range(1, n + 1)}


# --------------------------------------------------------------------------- given samples


def read_samples(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """Samples per task id from JSONL: ``completion`` (appended to the prompt) or ``program`` (whole).

    Returns ``task_id -> [(kind, text)]``; raises ``ValueError`` naming the bad line.
    """
    by_task: dict[str, list[tuple[str, str]]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                kind = "program" if "program" in row else "completion"
                by_task.setdefault(row["task_id"], []).append((kind, str(row[kind])))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: need task_id and completion or program ({exc})") from None
    if not by_task:
        raise ValueError(f"{path}: no samples")
    return by_task


def evaluate_samples(path: str | Path, *, limit: int | None = None, timeout_s: float = 3.0,
                     workers: int = 2, progress: Progress | None = None) -> EvalReport:
    """Score the samples in ``path`` (see :func:`read_samples`) on their problems."""
    started = time.perf_counter()
    given = read_samples(path)
    problems = load_problems(limit, task_ids=given)
    results, jobs = [], []
    for problem in problems:
        result = ProblemResult(problem.task_id)
        for index, (kind, text) in enumerate(given[problem.task_id]):
            program = text if kind == "program" else problem.prompt + text
            result.samples.append(Sample(index, program))
            jobs.append((problem, program))
        results.append(result)
    samples = [s for r in results for s in r.samples]
    with Executor(timeout_s, workers) as executor:
        executions = executor.run_many(jobs, on_done=lambda _: progress and progress(1))
    for sample, execution in zip(samples, executions):
        sample.take(execution)
    seconds = time.perf_counter() - started
    settings = {"samples_file": str(path), "timeout_s": timeout_s, "workers": workers,
                "n": min(r.n for r in results), "ks": [1, 10, 100]}
    return EvalReport(results, settings, {"execution": round(seconds, 3), "total": round(seconds, 3)},
                      mode="samples")


# --------------------------------------------------------------------------- a model


def humaneval_instruction(problem: Problem, max_tokens: int = 768) -> str:
    """The LintSeq paper's HumanEvalPack-style instruction: the signature sentence, then the docstring.

    A prompt whose signature and docstring alone exceed ``max_tokens`` still
    gets its whole instruction: skipping a problem would bias the score more
    than a long prompt does.
    """
    from model_runtime.prompting.instruction import InstructionTooLong, build_instruction

    try:
        return build_instruction(problem.prompt, problem.entry_point, max_tokens=max_tokens).text
    except InstructionTooLong:
        return build_instruction(problem.prompt, problem.entry_point, max_tokens=10**9).text


def evaluate_model(backend: Backend, settings: EvalSettings = EvalSettings(), *, limit: int | None = None,
                   progress: Progress | None = None) -> EvalReport:
    """Both arms on the first ``limit`` problems (all 164 by default); see the module docstring.

    Generation runs in this thread while the sandbox checks earlier samples on
    the executor's pool, so the model rarely waits for pytest.
    """
    from model_runtime.prompting.formats import PromptRequest, get_format
    from model_runtime.refine.loop import model_profile, prompt_payload

    fmt = get_format(model_profile(backend, settings.prompt_format).writes)
    problems = load_problems(limit)
    timing = {"generation": 0.0, "refine": 0.0}
    started = time.perf_counter()
    results, pending = [], []
    with Executor(settings.timeout_s, settings.workers) as executor, executor.pool() as pool:
        for problem in problems:
            result = ProblemResult(problem.task_id, instruction=humaneval_instruction(
                problem, settings.instruction_tokens))
            mark = time.perf_counter()
            prompt = prompt_payload(fmt, PromptRequest(instruction=result.instruction))
            for sample in _one_shot(backend, fmt, prompt, settings):
                result.samples.append(sample)
                program = complete_program(problem, sample.program)
                pending.append((sample, pool.submit(executor.run, problem, program)))
            timing["generation"] += time.perf_counter() - mark
            if settings.refine_rounds > 0:
                mark = time.perf_counter()
                result.refine = _refine_arm(backend, problem, result.instruction, settings)
                timing["refine"] += time.perf_counter() - mark
            results.append(result)
            if progress is not None:
                progress(1)
        for sample, future in pending:
            sample.take(future.result())
    timing["total"] = time.perf_counter() - started
    return EvalReport(results, asdict(settings), {k: round(v, 3) for k, v in timing.items()})


def _one_shot(backend: Backend, fmt, prompt, settings: EvalSettings) -> Iterator[Sample]:
    """``n`` samples in batches of ``settings.batch``, each batch with its own seed."""
    from model_runtime.prompting.proposals import interpret_completion

    index = 0
    while index < settings.n:
        k = min(settings.batch, settings.n - index)
        request = sampled_request(settings, prompt, k=k, seed_offset=index, stop=fmt.stop_sequences)
        for completion in backend.generate(request).completions:
            program = interpret_completion(fmt, completion, "").program
            yield Sample(index, program, completion.new_tokens, completion.text)
            index += 1


class CountingBackend:
    """Passes a backend through, counting the samples and tokens the refine loop asks for."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.name = inner, getattr(inner, "name", "backend")
        self.samples = self.tokens = 0

    def load(self) -> None:
        self.inner.load()

    def generate(self, request, cancel=None):
        result = self.inner.generate(request, cancel)
        self.samples += len(result.completions)
        self.tokens += result.new_tokens
        return result

    def __getattr__(self, name: str):  # score, profile: whatever else the backend offers
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def stream(self, request, cancel=None, *, text_deltas=False):
        for event in self.inner.stream(request, cancel, text_deltas=text_deltas):
            if isinstance(event, CandidateEvent):
                self.samples += 1
                self.tokens += event.completion.new_tokens
            yield event


def _refine_arm(backend: Backend, problem: Problem, instruction: str, settings: EvalSettings) -> RefineArm:
    """CYCLE chains on ``problem`` until green or ``settings.n`` samples are spent."""
    from model_runtime.refine.loop import RefineBudget, RefineTarget, refine
    from model_runtime.sandbox.runner import Sandbox

    arm, counter = RefineArm(), CountingBackend(backend)
    with tempfile.TemporaryDirectory(prefix="editseq-refine-") as folder:
        for name, text in problem_files(problem, problem.prompt, settings.timeout_s).items():
            Path(folder, name).write_text(text, encoding="utf-8")
        sandbox = Sandbox(folder, limits=Executor.limits(settings.timeout_s), env=SANDBOX_ENV)
        while arm.samples < settings.n and arm.solved_at is None:
            rounds = min(settings.refine_rounds, settings.n - arm.samples - 1)
            budget = RefineBudget(
                rounds=rounds, candidates=1, max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature, top_p=settings.top_p,
                seed=settings.seed + 1000 * arm.chains, patience=max(1, rounds),
                prompt_format=settings.prompt_format,
            )
            before = counter.samples
            result = refine(RefineTarget(folder, "solution.py", problem.entry_point), [TEST_ID], counter,
                            sandbox=sandbox, instruction=instruction, budget=budget)
            arm.chains += 1
            arm.samples, arm.tokens = counter.samples, counter.tokens
            arm.stop_reasons.append(result.reason)
            arm.program = result.final
            if result.verified:
                arm.solved_at = arm.samples
            if counter.samples == before:  # nothing was generated: another chain would loop forever
                break
    return arm
