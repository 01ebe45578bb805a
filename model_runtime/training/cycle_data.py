"""CYCLE phase II: collect repair data from the current model's own failures (notes §2.1).

:func:`collect_cycle_data` samples a model on problems with tests
(HumanEval's schema, e.g. ``editseq corpus``'s ``problems.jsonl``), ``k``
samples a problem in the ``lintseq`` format exactly as ``editseq eval``
samples (same instruction, same program resolution, same sandbox and time
limit), runs every program against the problem's tests, and keeps:

* a **repair row** for each failing sample: the instruction, the faulty
  function (the entry point located in the program, dedented, as the refine
  loop shows a function; when the program defines no such function, the
  whole program, which is what the eval's refine arm shows the model then,
  ``origin.scope`` says which), the execution feedback CYCLE shows (one failing
  test, :func:`~model_runtime.prompting.feedback.execution_feedback`; ``timed out`` for
  a timeout), the good solution and the ``cycle`` answer, the diff steps
  from faulty to good (:func:`~model_runtime.edits.repair_diffs.repair_diffs`).
  The good solution is, among the correct ones (the canonical solution, run
  once to make sure it passes, and the model's passing samples of the same
  problem), the one **most similar to the faulty code**, so that the target
  reads as a fix rather than a rewrite. CYCLE ranks by BM25 over NLTK tokens;
  here the similarity is ``difflib.SequenceMatcher.ratio`` over identifier /
  punctuation tokens (:func:`similarity`), which for two versions of one
  function ranks the same way and needs no corpus statistics. Ties go to the
  canonical solution, then to the lowest sample index.
* a **plain row** for each passing sample: the instruction and the model's
  own ``lintseq`` diffs, as CYCLE keeps passed samples as plain examples.

The feedback is left as the sandbox reports it (``candidate(...)``, the
argument name of HumanEval's ``check``): the eval's refine arm shows the model
the same words, so training and inference read alike.

:func:`import_trajectories` turns refine runs into repair rows: a JSON
``RefineResult.to_dict()`` (one object, a list, or one per line) that ended
verified gives one row per repair round, the code and feedback that round
showed the model, with the verified final program as the good solution.

Rows are written as JSONL in one atomic rename (:func:`write_rows`); see
:data:`REPAIR_FIELDS` for the schema and :class:`CollectCounts` for what is
counted, skips with their reasons included.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from model_runtime import defaults
from model_runtime.evaluation.problems import Execution, Executor, Problem, complete_program
from model_runtime.prompting.feedback import DEFAULT_MAX_TOKENS, execution_feedback
from model_runtime.prompting.formats import TIMEOUT_FEEDBACK, PromptRequest, get_format
from model_runtime.refine.target import RefineError, locate_function
from model_runtime.edits.repair_diffs import DEFAULT_CONTEXT, RepairDiffError, repair_diffs
from model_runtime.sandbox.runner import RunResult

__all__ = [
    "CheckedSample",
    "CollectCounts",
    "CollectSettings",
    "REPAIR_FIELDS",
    "PLAIN_FIELDS",
    "Skip",
    "collect_cycle_data",
    "good_solution",
    "import_trajectories",
    "problem_rows",
    "read_problems",
    "record_run",
    "repair_row",
    "similarity",
    "write_rows",
]

#: Fields of a repair row (``kind: "repair"``). ``faulty``/``good`` are dedented function code;
#: ``edit_path`` the ``cycle`` answer's diffs; ``good_from`` ``canonical``, ``sample:N`` or
#: ``refine:final``; ``origin`` says which sample (``sample``, with ``scope``: ``function`` or
#: ``program``) or refine run and round (``file``, ``result``, ``round``) it came from.
REPAIR_FIELDS = ("kind", "source", "task_id", "instruction", "faulty", "feedback", "good", "edit_path",
                 "status", "good_from", "similarity", "origin")
#: Fields of a plain row (``kind: "plain"``): a passing sample's instruction and ``lintseq`` diffs.
PLAIN_FIELDS = ("kind", "source", "task_id", "instruction", "edit_path", "program", "origin")

Progress = Callable[[int], None]


class Skip:
    """Why a sample or round gave no row (keys of ``CollectCounts.skipped``)."""

    NO_PROGRAM = "no-program"              # no diff of the sample applied
    NO_FEEDBACK = "no-feedback"            # a failed run with nothing to show the model
    NO_CORRECT = "no-correct-solution"     # neither the canonical solution nor a sample passed
    SAME_AS_GOOD = "same-as-good"          # the faulty function is already a correct one
    NOT_REPRESENTABLE = "not-representable"  # no cycle answer leads to the good code (see repair_diffs)
    NOT_VERIFIED = "trajectory-not-verified"  # a refine run that did not end green
    BAD_TRAJECTORY = "trajectory-malformed"


@dataclass(frozen=True, slots=True)
class CollectSettings:
    """How :func:`collect_cycle_data` samples and checks; sampling defaults follow ``editseq eval``."""

    samples: int = 4
    temperature: float = defaults.SAMPLING_TEMPERATURE
    top_p: float = defaults.TOP_P
    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    timeout_s: float = 3.0
    workers: int = 2
    seed: int = defaults.SEED
    #: Samples asked for in one generate call.
    batch: int = 16
    instruction_tokens: int = 768
    #: Feedback budget (estimated tokens), as the refine loop's default.
    feedback_tokens: int = DEFAULT_MAX_TOKENS
    #: Context lines of the repair diffs.
    context: int = DEFAULT_CONTEXT

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch < 1 or self.workers < 1 or self.max_new_tokens < 1:
            raise ValueError("samples, batch, workers and max_new_tokens must be at least 1")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout_s}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")


@dataclass(slots=True)
class CollectCounts:
    """What a collection (and trajectory import) did."""

    problems: int = 0
    samples: int = 0
    passed: int = 0
    failed: int = 0
    timeouts: int = 0
    #: Runs that ended otherwise (collection error, refused by the sandbox).
    errors: int = 0
    #: Samples with no program to run (no diff of theirs applied).
    not_run: int = 0
    canonical_failed: int = 0
    repair_rows: int = 0
    plain_rows: int = 0
    trajectories: int = 0
    trajectory_rows: int = 0
    skipped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__slots__ if name != "skipped"}
        data["skipped"] = dict(sorted(self.skipped.items()))
        return data

    def summary(self) -> str:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (f"{self.problems} problems, {self.samples} samples ({self.passed} passed, {self.failed} failed, "
                f"{self.timeouts} timed out, {self.errors} other errors, {self.not_run} without a program), {self.repair_rows} repair rows "
                f"({self.trajectory_rows} from {self.trajectories} refine trajectories), {self.plain_rows} "
                f"plain rows; skipped: {skipped}"
                + (f"; {self.canonical_failed} canonical solutions failed their tests" if self.canonical_failed else ""))


@dataclass(slots=True)
class CheckedSample:
    """One sample after its run: the model's program and diffs, and how the program did."""

    index: int
    program: str
    diffs: list[str]
    completion: str = ""
    status: str = "not_run"
    feedback: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# --------------------------------------------------------------------------- problems


def read_problems(path: str | os.PathLike) -> list[Problem]:
    """Problems of a HumanEval-schema JSONL file (``ValueError`` naming the line if one is bad)."""
    from model_runtime.corpus.doctest_problems import read_problem_file

    return read_problem_file(path)


# --------------------------------------------------------------------------- similarity and rows

_TOKEN = re.compile(r"\w+|[^\w\s]")


def similarity(a: str, b: str) -> float:
    """How alike two pieces of code read: ``SequenceMatcher.ratio`` over word and punctuation tokens."""
    return SequenceMatcher(None, _TOKEN.findall(a), _TOKEN.findall(b), autojunk=False).ratio()


def good_solution(faulty: str, correct: Sequence[tuple[str, str]]) -> tuple[str, str, float] | None:
    """``(code, label, similarity)`` of the correct solution most similar to ``faulty``.

    ``correct`` is ``(label, code)`` pairs in order of preference for ties
    (canonical first); a solution equal to ``faulty`` is no fix and is passed
    over. ``None`` if nothing is left.
    """
    best = None
    for label, code in correct:
        if code == faulty:
            continue
        score = similarity(faulty, code)
        if best is None or score > best[2]:
            best = (code, label, score)
    return best


def repair_row(*, source: str, task_id: str, instruction: str, faulty: str, feedback: str, good: str,
               status: str, good_from: str, origin: dict, context: int = DEFAULT_CONTEXT,
               score: float | None = None) -> dict:
    """One repair row (raises :class:`~model_runtime.edits.repair_diffs.RepairDiffError` if no answer fits)."""
    diffs = repair_diffs(faulty, good, context=context)
    return {
        "kind": "repair", "source": source, "task_id": task_id, "instruction": instruction, "faulty": faulty,
        "feedback": feedback, "good": good, "edit_path": diffs, "status": status, "good_from": good_from,
        "similarity": round(similarity(faulty, good) if score is None else score, 4), "origin": origin,
    }


def _function(problem: Problem, program: str) -> str | None:
    """The entry point's code (dedented) in ``program``, or None if it defines no such function."""
    try:
        return locate_function(program, problem.entry_point).code
    except RefineError:
        return None


def problem_rows(problem: Problem, instruction: str, samples: Sequence[CheckedSample],
                 canonical_ok: bool, counts: CollectCounts, context: int = DEFAULT_CONTEXT) -> list[dict]:
    """The rows of one problem's checked samples (see the module docstring); counts skips."""
    correct: list[tuple[str, str]] = []
    if canonical_ok and problem.canonical_solution.strip():
        code = _function(problem, problem.canonical_program)
        if code is not None:
            correct.append(("canonical", code))
    for sample in samples:
        if sample.passed:
            code = _function(problem, sample.program)
            if code is not None:
                correct.append((f"sample:{sample.index}", code))
    rows = []
    for sample in samples:
        origin = {"sample": sample.index}
        if sample.passed:
            rows.append({"kind": "plain", "source": "sample", "task_id": problem.task_id, "instruction": instruction,
                         "edit_path": list(sample.diffs), "program": sample.program, "origin": origin})
            continue
        if not sample.program.strip():
            counts.skipped[Skip.NO_PROGRAM] += 1
            continue
        faulty = _function(problem, sample.program)
        scope = "function"
        if faulty is None:  # no such function: the repair is from everything the model wrote
            faulty, scope = sample.program.strip("\n"), "program"
        if not sample.feedback:
            counts.skipped[Skip.NO_FEEDBACK] += 1
            continue
        if not correct:
            counts.skipped[Skip.NO_CORRECT] += 1
            continue
        chosen = good_solution(faulty, correct)
        if chosen is None:
            counts.skipped[Skip.SAME_AS_GOOD] += 1
            continue
        good, label, score = chosen
        try:
            row = repair_row(source="sample", task_id=problem.task_id, instruction=instruction, faulty=faulty,
                             feedback=sample.feedback, good=good, status=sample.status, good_from=label,
                             origin={**origin, "scope": scope}, context=context, score=score)
        except RepairDiffError:
            counts.skipped[Skip.NOT_REPRESENTABLE] += 1
            continue
        rows.append(row)
    counts.repair_rows += sum(row["kind"] == "repair" for row in rows)
    counts.plain_rows += sum(row["kind"] == "plain" for row in rows)
    return rows


def record_run(sample: CheckedSample, execution: Execution | None, run: RunResult | None, counts: CollectCounts,
               feedback_tokens: int = DEFAULT_MAX_TOKENS) -> None:
    """Take a run's outcome into ``sample`` (status, CYCLE feedback) and ``counts``; ``None``: not run."""
    counts.samples += 1
    if execution is None:
        sample.status = "not_run"
        counts.not_run += 1
        return
    sample.status = execution.status
    if execution.passed:
        counts.passed += 1
        return
    if execution.status == "failed":
        counts.failed += 1
    elif execution.status == "timeout":
        counts.timeouts += 1
    else:
        counts.errors += 1
    # CYCLE's words for a timeout, whichever limit (the in-test timer or the sandbox's) fired.
    sample.feedback = (TIMEOUT_FEEDBACK if execution.status == "timeout"
                       else execution_feedback(run, max_tokens=feedback_tokens))


# --------------------------------------------------------------------------- collection


def collect_cycle_data(
    backend,
    problems: Sequence[Problem],
    settings: CollectSettings = CollectSettings(),
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> tuple[list[dict], CollectCounts]:
    """Sample ``backend`` on ``problems``, run everything, and return ``(rows, counts)``.

    Generation runs in this thread while the sandbox checks earlier programs
    on the executor's pool (as ``editseq eval`` does). ``progress`` is called
    with 1 for every finished run (samples, and the canonical checks).
    """
    from model_runtime.backends.base import sampled_request
    from model_runtime.evaluation.run import humaneval_instruction
    from model_runtime.prompting.proposals import interpret_completion

    fmt = get_format("lintseq")
    counts = CollectCounts(problems=len(problems))
    lock = threading.Lock()

    def done(_future) -> None:
        if progress is not None:
            with lock:
                progress(1)

    plan = []  # (problem, instruction, canonical future or None, [(sample, future)])
    with Executor(settings.timeout_s, settings.workers) as executor, executor.pool() as pool:
        def submit(problem: Problem, program: str):
            future = pool.submit(executor.check, problem, program, cancel)
            future.add_done_callback(done)
            return future

        for problem in problems:
            instruction = humaneval_instruction(problem, settings.instruction_tokens)
            canonical = submit(problem, problem.canonical_program) if problem.canonical_solution.strip() else None
            prompt = fmt.build(PromptRequest(instruction))
            pending = []
            index = 0
            while index < settings.samples:
                k = min(settings.batch, settings.samples - index)
                request = sampled_request(settings, prompt, k=k, seed_offset=index, stop=fmt.stop_sequences)
                for completion in backend.generate(request, cancel).completions:
                    proposal = interpret_completion(fmt, completion, "")
                    sample = CheckedSample(index, proposal.program, proposal.diffs, completion.text)
                    future = submit(problem, complete_program(problem, sample.program)) if sample.program.strip() else None
                    if future is None:
                        done(None)
                    pending.append((sample, future))
                    index += 1
            plan.append((problem, instruction, canonical, pending))
        rows = []
        for problem, instruction, canonical, pending in plan:
            canonical_ok = False
            if canonical is not None:
                canonical_ok = canonical.result()[0].passed
                counts.canonical_failed += not canonical_ok
            for sample, future in pending:
                if future is None:
                    record_run(sample, None, None, counts)
                else:
                    record_run(sample, *future.result(), counts, settings.feedback_tokens)
            rows.extend(problem_rows(problem, instruction, [s for s, _ in pending], canonical_ok, counts,
                                     settings.context))
    return rows, counts


# --------------------------------------------------------------------------- refine trajectories


def _trajectory_objects(path: Path) -> list[dict]:
    """The refine results in ``path``: one JSON object, a JSON list, or one object per line."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
    objects = data if isinstance(data, list) else [data]
    if not objects:
        raise ValueError(f"{path}: no refine result in the file")
    return objects


def import_trajectories(paths: Iterable[str | os.PathLike], counts: CollectCounts | None = None,
                        context: int = DEFAULT_CONTEXT) -> tuple[list[dict], CollectCounts]:
    """Repair rows from refine runs that ended verified (see the module docstring).

    Raises ``ValueError`` for a file that is not JSON or holds no refine
    result, ``OSError`` if one cannot be read; a result without the fields of
    ``RefineResult.to_dict()`` is counted as malformed and skipped.
    """
    counts = counts if counts is not None else CollectCounts()
    rows: list[dict] = []
    for path in map(Path, paths):
        for number, data in enumerate(_trajectory_objects(path)):
            counts.trajectories += 1
            try:
                verified = bool(data["verified"])
                good = data["best"]["program"]
                instruction = data["instruction"]
                task_id = f"{data['path']}::{data['function']}"
                rounds = data["trajectory"]
                if not isinstance(good, str) or not isinstance(instruction, str) or not isinstance(rounds, list):
                    raise TypeError
            except (KeyError, TypeError):
                counts.skipped[Skip.BAD_TRAJECTORY] += 1
                continue
            if not verified:
                counts.skipped[Skip.NOT_VERIFIED] += 1
                continue
            seen = set()
            for record in rounds:
                if not isinstance(record, dict):
                    continue
                code, feedback, round_no = record.get("code"), record.get("feedback"), record.get("round")
                if not isinstance(code, str) or not isinstance(feedback, str) or not isinstance(round_no, int):
                    counts.skipped[Skip.BAD_TRAJECTORY] += 1
                    continue
                if round_no < 1 or not code.strip() or (code, feedback) in seen:
                    continue
                seen.add((code, feedback))
                if not feedback:
                    counts.skipped[Skip.NO_FEEDBACK] += 1
                    continue
                if code == good:
                    counts.skipped[Skip.SAME_AS_GOOD] += 1
                    continue
                origin = {"file": str(path), "result": number, "round": round_no}
                try:
                    row = repair_row(source="refine", task_id=task_id, instruction=instruction, faulty=code,
                                     feedback=feedback, good=good, status="failed", good_from="refine:final",
                                     origin=origin, context=context)
                except RepairDiffError:
                    counts.skipped[Skip.NOT_REPRESENTABLE] += 1
                    continue
                rows.append(row)
                counts.repair_rows += 1
                counts.trajectory_rows += 1
    return rows, counts


# --------------------------------------------------------------------------- output


def write_rows(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write ``rows`` as JSONL atomically (a temporary file in the same folder, then a rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    written = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return written
