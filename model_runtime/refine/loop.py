"""The CYCLE loop: propose, apply in the sandbox, run the tests, show the failure, repeat.

CYCLE (Ding et al., 2024) found that a model which reads its own faulty code
plus the execution feedback repairs far better than one that regenerates
blindly, and that weak models copy the faulty code back. :func:`refine` is that
loop around one function, for every front end (CLI, language server, pytest
plugin); it knows nothing about editors.

Round 0 runs the function as it is (or, if its body is empty, also asks the
model to write it from the instruction, in the format the model writes:
``lintseq`` insertion diffs, or one diff from a ``chat`` model). Every repair
round then shows the model the best program so far and its execution feedback,
takes ``candidates`` answers, applies each to that program, lands the result in
the file and runs the tests in the :class:`~model_runtime.sandbox.runner.Sandbox`
(never in the user's tree). How a round asks is the *strategy*, chosen per
model (:class:`~model_runtime.backends.base.ModelProfile`: the folder's
manifest, the tokenizer, the server's model entry, or the ``format``
setting): ``generate`` asks for ``cycle`` repair diffs (models trained on
them), ``rewrite`` asks in the model's own format with the failure as context
(a LintSeq model writes the function again from an empty body, the only task
the public LintSeq models were tuned for; a chat model is asked for one diff),
``rank`` is below. Whatever the model answers, only the target function (plus
new imports at the top and new helpers it calls) lands in the file
(:meth:`~model_runtime.refine.target.FunctionTarget.land`); the rest of an
answer (examples, tests, prints) is dropped and the step says so.
What a run checks (``verify``): the failing tests, and the tests that passed
before the change, so that a fix is never offered as verified while it breaks
a test that passed. Round 0 runs the original code against the failing tests'
files (``files``, the default), the whole suite (``suite``) or only the
failing tests (``failing``); the tests among them that passed are kept, and
every later run runs the failing tests plus those. Tests that failed before
and are not among the failing ones asked about (another bug's) are left out:
they neither block nor count. ``passed``/``total`` count the failing tests
plus the kept ones (:attr:`RefineResult.checked` says how many failed
before and how many passed).
Candidates are ranked by tests passed, then by fewer edits; the best one
changes only for one that passes *more* tests. A candidate that leaves the
code as it was (the faulty code copied back) or repeats a program already run
is not run again. The loop stops when the best program is green, when the
rounds or seconds run out, when the best has not improved for ``patience``
rounds, or when ``cancel`` is set; cancelling stops generation (the event
goes to the backend) and kills the test processes (it goes to the sandbox),
both within a fraction of a second.

The ``rank`` strategy (:attr:`RefineBudget.strategy`) replaces sampling in
repair rounds: every single-edit repair of the best program
(:func:`~model_runtime.edits.mutations.mutations`: the swaps, off-by-ones,
name and call changes, repeated statements removed) is written as the
``cycle`` answer the model would give (:func:`~model_runtime.edits.repair_diffs.repair_diffs`),
the backend scores each answer's log-likelihood after the round's prompt
(``backend.score``), and the ``candidates`` likeliest untested ones run. The
order is kept per program, so later rounds from the same best program take
the next ones; a round that still tested something new does not count
against ``patience``. Every candidate applies and is one edit, whatever the
model; how well the model orders them is measured, not assumed (README,
``editseq eval repair``). Missing logic has no enumerable repair and needs
``generate``.

Events (:mod:`model_runtime.refine.events`) go to ``on_event`` as things
happen; the :class:`~model_runtime.refine.events.RefineResult` holds the best
path as file diffs and the whole trajectory as plain data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_runtime import defaults
from model_runtime.backends.base import (
    Backend,
    CandidateEvent,
    Completion,
    EditEvent,
    ModelProfile,
    sampled_request,
)
from model_runtime.prompting.feedback import execution_feedback
from model_runtime.prompting.formats import ChatFormat, PromptFormat, PromptRequest, get_format
from model_runtime.prompting.instruction import InstructionTooLong, build_instruction
from model_runtime.prompting.proposals import interpret_completion, single_edit_answers
from model_runtime.sandbox.results import CaseResult, matches
from model_runtime.sandbox.runner import RunResult, Sandbox, SandboxError

from .events import (
    CandidateRecord,
    CandidateTested,
    EditProposed,
    RefineEvent,
    RefineResult,
    RoundFinished,
    RoundRecord,
    RoundStarted,
    StopReason,
)
from .target import FunctionTarget, Landing, RefineError, file_diff, locate_function, read_source, with_docstring

__all__ = ["RefineBudget", "RefineError", "RefineTarget", "model_profile", "prompt_payload", "refine", "repair_prompt",
           "write_prompt"]

EventSink = Callable[[RefineEvent], None]
_NOT_FOUND = ("test not found", "test file not found")


@dataclass(frozen=True, slots=True)
class RefineBudget:
    """How much the loop may spend.

    ``rounds`` counts repair rounds after round 0; ``seconds`` (``None``: no
    limit) bounds the whole run, generation and tests included; ``patience``
    is how many rounds in a row without a better candidate end the loop.
    ``strategy`` is how repair rounds find candidates and ``prompt_format``
    the format the model speaks (``auto``: its profile; see the module
    docstring). ``temperature == 0`` is greedy: then extra candidates are
    copies of the first, so ask for several only with sampling.
    """

    rounds: int = defaults.ROUNDS
    candidates: int = defaults.CANDIDATES
    seconds: float | None = None
    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    min_new_tokens: int = defaults.MIN_NEW_TOKENS
    temperature: float = defaults.TEMPERATURE
    top_p: float = defaults.TOP_P
    seed: int | None = defaults.SEED
    patience: int = 2
    feedback_tokens: int = 256
    instruction_tokens: int = 512
    strategy: str = defaults.STRATEGY
    prompt_format: str = defaults.PROMPT_FORMAT

    def __post_init__(self) -> None:
        limits = defaults.LIMITS
        if not (0 <= self.rounds <= limits["rounds"] and 1 <= self.candidates <= limits["candidates"]
                and self.patience >= 1):
            raise ValueError(f"rounds must be from 0 to {limits['rounds']}, candidates from 1 to "
                             f"{limits['candidates']}, patience at least 1")
        if self.strategy not in defaults.STRATEGIES:
            raise ValueError(f"the strategy must be one of {', '.join(defaults.STRATEGIES)}, got {self.strategy!r}")
        if self.prompt_format not in defaults.WRITE_FORMATS:
            raise ValueError(f"the prompt format must be one of {', '.join(defaults.WRITE_FORMATS)}, "
                             f"got {self.prompt_format!r}")
        if self.seconds is not None and not 0 < self.seconds <= defaults.LIMITS["timeout"]:
            raise ValueError(f"seconds must be positive and at most {defaults.LIMITS['timeout']:g}, got {self.seconds}")
        sampled_request(self, "", k=self.candidates)


@dataclass(frozen=True, slots=True)
class RefineTarget:
    """The function to make green: ``path`` relative to ``workspace``, ``function`` a qualname."""

    workspace: str | Path
    path: str
    function: str


def repair_prompt(instruction: str, code: str, feedback: str) -> str:
    """The exact prompt of a repair round (``cycle`` format), e.g. to build training data."""
    return get_format("cycle").build(PromptRequest(instruction, code, feedback))


def write_prompt(instruction: str) -> str:
    """The exact prompt of round 0 for an empty function (``lintseq`` format)."""
    return get_format("lintseq").build(PromptRequest(instruction))


def refine(
    target: RefineTarget,
    tests: Iterable[str],
    backend: Backend,
    *,
    sandbox: Sandbox | None = None,
    instruction: str | None = None,
    budget: RefineBudget = RefineBudget(),
    on_event: EventSink | None = None,
    cancel: threading.Event | None = None,
    source: str | None = None,
    verify: str = defaults.VERIFY,
) -> RefineResult:
    """Repair ``target`` until ``tests`` pass or the budget is spent (see the module docstring).

    ``source`` is the file's text when it differs from the disk (an editor's
    unsaved buffer): the loop starts from it and the tests run it.

    ``verify`` is what else must pass (see the module docstring): ``files``,
    ``suite`` or ``failing``.

    Raises :class:`RefineError` for input that can never work: no such file or
    function, no test ids, a test id that matches no test. Model errors are
    the backend's (:class:`~model_runtime.backends.BackendError`).
    """
    tests = list(dict.fromkeys(tests))
    if not tests:
        raise RefineError("no test ids: the loop needs tests to know when the code is right")
    if verify not in defaults.VERIFY_SCOPES:
        raise RefineError(f"verify must be one of {', '.join(defaults.VERIFY_SCOPES)}, got {verify!r}")
    workspace = Path(target.workspace).resolve()
    if not workspace.is_dir():
        raise RefineError(f"workspace is not a folder: {target.workspace}")
    if source is None:
        source = read_source(workspace, target.path)
    function = locate_function(source, target.function, target.path)
    for test in tests:
        if not (workspace / test.split("::", 1)[0]).exists():
            raise RefineError(f"test file not found: {test.split('::', 1)[0]} (from test id {test})")
    if instruction is None:
        instruction = function_instruction(source, target.function, budget.instruction_tokens)
    if sandbox is not None and sandbox.workspace != workspace:
        raise RefineError(f"the sandbox runs {sandbox.workspace}, not the target's workspace {workspace}")
    # A sandbox made here is this loop's: its warm runner is stopped when the loop ends.
    with contextlib.nullcontext(sandbox) if sandbox is not None else Sandbox(workspace) as sandbox:
        loop = _Loop(function, instruction, tests, backend, sandbox, budget, on_event or (lambda event: None), verify)
        with _Stopper(cancel, budget.seconds) as stopper:
            return loop.run(stopper)


def function_instruction(source: str, function: str, max_tokens: int) -> str:
    try:
        return build_instruction(source, function, max_tokens=max_tokens).text
    except (LookupError, InstructionTooLong) as exc:
        raise RefineError(str(exc)) from None


class _Stopper:
    """One event that is set by the caller's ``cancel`` or by the deadline, whichever comes first.

    The backend and the sandbox each take a single event; a watcher thread
    folds both causes into it (polling every 20 ms) and remembers which.
    """

    def __init__(self, cancel: threading.Event | None, seconds: float | None) -> None:
        self.event = threading.Event()
        self.reason: StopReason | None = None
        self._cancel = cancel
        self._deadline = None if seconds is None else time.monotonic() + seconds
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="editseq-refine-stop", daemon=True)

    def __enter__(self) -> _Stopper:
        self._check()
        if self.reason is None and (self._cancel is not None or self._deadline is not None):
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(0.02) and not self._check():
            pass

    def _check(self) -> bool:
        if self._cancel is not None and self._cancel.is_set():
            self.reason = "cancelled"
        elif self._deadline is not None and time.monotonic() >= self._deadline:
            self.reason = "seconds"
        else:
            return False
        self.event.set()
        return True


class _Loop:
    """The state of one run: the best candidate, every program run, the trajectory."""

    def __init__(
        self, function: FunctionTarget, instruction: str, tests: list[str], backend: Backend,
        sandbox: Sandbox, budget: RefineBudget, emit: EventSink, verify: str = defaults.VERIFY,
    ) -> None:
        self.function = function
        self.instruction = instruction
        self.tests = tests  # the failing tests: they must pass
        self.verify = verify
        self.kept: tuple[str, ...] | None = None  # the other tests that passed in round 0: they must still pass
        self.failing_before = 0  # the tests asked about that failed in round 0
        self.backend = backend
        self.sandbox = sandbox
        self.budget = budget
        self.emit = emit
        self.rounds: list[RoundRecord] = []
        self.records: dict[tuple[int, int | None], CandidateRecord] = {}
        self.step_landings: dict[tuple[int, int | None], list[Landing]] = {}  # candidate -> its steps' files
        self.runs: dict[str, CandidateRecord] = {}  # file text -> the candidate that ran it
        self.best: CandidateRecord | None = None
        self.stop: _Stopper | None = None
        self._round_started = 0.0
        # The profile (and ``auto``) asks the backend, which loads the model: only when a round needs it.
        self._profile: ModelProfile | None = None
        self.strategy = _strategy(backend, budget.strategy, None) if budget.strategy != "auto" else None
        self._ranked: dict[str, list[tuple[float, str]]] = {}  # program -> (score, answer), likeliest first
        self.texts: dict[tuple[int, int | None], str] = {}  # candidate -> its whole file
        self._targets: dict[str, FunctionTarget] = {}  # file text -> the function in it

    # -- the loop ------------------------------------------------------------------------

    def run(self, stopper: _Stopper) -> RefineResult:
        self.stop = stopper
        started = time.perf_counter()
        self._round_zero()
        repairs, stale = 0, 0
        while True:
            reason = self._stop_reason(repairs, stale)
            if reason is not None:
                break
            repairs += 1
            stale = 0 if self._repair_round(repairs) else stale + 1
        result = self._result(reason, repairs, time.perf_counter() - started)
        self.emit(result.done_event())
        return result

    def _stop_reason(self, repairs: int, stale: int) -> StopReason | None:
        if self.best.green:
            return "green"
        if self.stop.reason is not None:
            return self.stop.reason
        if stale >= self.budget.patience:
            return "no_improvement"
        if repairs >= self.budget.rounds:
            return "rounds"
        return None

    @property
    def profile(self) -> ModelProfile:
        """What the model speaks (asked once; loads the model): the backend's profile, or the setting's."""
        if self._profile is None:
            self._profile = model_profile(self.backend, self.budget.prompt_format)
        return self._profile

    def _round_zero(self) -> None:
        """Run the code as it is; for an empty function, also let the model write it."""
        function = self.function
        fmt = get_format(self.profile.writes) if function.empty else None
        request = PromptRequest(self.instruction)
        record = self._open_round(0, fmt, fmt.build(request) if fmt else "", "", "")
        self.best = CandidateRecord(round=0, candidate=None, status="tested", program=function.code)
        self.texts[tuple(self.best.key)] = function.source
        result = self._try(record, self.best, [], function.source)
        if result is not None:
            _check_test_ids(result)
        if fmt is not None:
            self._propose(record, fmt, prompt_payload(fmt, request), start="", parent=None)
        self._close_round(record)

    def _repair_round(self, number: int) -> bool:
        """One repair round from the best program so far; True if it made progress.

        Progress is a better program; for ``rank``, also any new edit tested.
        """
        best = self.best
        if self.strategy is None:
            self.strategy = _strategy(self.backend, self.budget.strategy, self.profile)
        if self.strategy == "rewrite":
            fmt = get_format(self.profile.writes)
            # A LintSeq model writes from an empty file, with the failure as context; a chat model edits.
            code = best.program if fmt.name == "chat" else ""
            request = PromptRequest(self.instruction, code, best.feedback)
            record = self._open_round(number, fmt, fmt.build(request), best.program, best.feedback)
            self._propose(record, fmt, prompt_payload(fmt, request), start=code, parent=best, whole=not code)
            return self._close_round(record)
        fmt = get_format("cycle")
        prompt = fmt.build(PromptRequest(self.instruction, best.program, best.feedback))
        record = self._open_round(number, fmt, prompt, best.program, best.feedback)
        if self.strategy == "rank":
            tested = self._rank(record, fmt, prompt, best)
            return self._close_round(record) or tested
        self._propose(record, fmt, prompt, start=best.program, parent=best)
        return self._close_round(record)

    def _open_round(self, number: int, fmt: PromptFormat | None, prompt: str, code: str, feedback: str) -> RoundRecord:
        self._round_started = time.perf_counter()
        record = RoundRecord(number, fmt.name if fmt else "none", prompt, code, feedback)
        record.timings.update(model=0.0, pytest=0.0, sandbox=0.0)
        self.rounds.append(record)
        best = self.best
        self.emit(RoundStarted(number, record.format, self.budget.candidates if fmt else 0,
                               best.passed if best else 0, best.total if best else 0))
        return record

    def _close_round(self, record: RoundRecord) -> bool:
        """Rank the round's runs (tests passed, then fewer edits); the best changes only for
        one that passes more tests than it."""
        ran = [c for c in record.candidates if c.status == "tested"]
        top = max(ran, key=lambda c: (c.passed, -len(c.diffs)), default=None)
        improved = top is not None and top is not self.best and top.passed > self.best.passed
        if improved:
            self.best = top
        record.timings["total"] = time.perf_counter() - self._round_started
        best = self.best
        self.emit(RoundFinished(record.round, improved, best.round, best.candidate, best.passed,
                                best.total, round(record.timings["total"], 3)))
        return improved

    # -- candidates ----------------------------------------------------------------------

    def _propose(self, record: RoundRecord, fmt: PromptFormat, prompt, start: str,
                 parent: CandidateRecord | None, whole: bool = False) -> None:
        """Ask for the round's candidates, then apply, land and run each.

        ``whole``: the answer rewrites the function from an empty file, so it
        is one step from the parent's code (its insertion steps build the
        function from nothing and would each replace the parent's whole body).
        """
        if self.stop.event.is_set():
            return
        base = self._base(parent)
        # Written from an empty file (LintSeq): the model leaves the docstring out, so it is put back.
        restore = (lambda program: with_docstring(base.code, program, base.qualname)) if not start else str
        for completion in self._generate(record, fmt, prompt):
            proposal = interpret_completion(fmt, completion, start)
            landing = base.land(restore(proposal.program)) if proposal.changed else None
            program = landing.code if landing is not None else (parent.program if parent else base.code)
            candidate = CandidateRecord(
                round=record.round, candidate=completion.index, status="tested", program=program,
                diffs=proposal.diffs, refused=[f"step {r.step}: {r.reason}" for r in proposal.refused],
                completion=completion.text, finish_reason=completion.finish_reason,
                parent=parent.key if parent else None,
            )
            if whole:
                steps = [landing] if landing is not None else []
            else:
                steps = [base.land(restore(step.new)) for step in proposal.steps]
            if completion.finish_reason == "cancelled" or self.stop.event.is_set():
                self._settle(record, candidate, steps, "cancelled")
            elif landing is None or landing.text == base.source:
                self._settle(record, candidate, steps, "refused" if proposal.refused else "copy")
            else:
                self._try(record, candidate, steps, landing.text)

    def _base(self, parent: CandidateRecord | None) -> FunctionTarget:
        """The function as it stands in ``parent``'s file (the original for round 0), to land answers in."""
        if parent is None or parent.candidate is None:
            return self.function
        text = self.texts[tuple(parent.key)]
        if text not in self._targets:
            self._targets[text] = locate_function(text, self.function.qualname, self.function.path)
        return self._targets[text]

    def _rank(self, record: RoundRecord, fmt: PromptFormat, prompt: str, best: CandidateRecord) -> bool:
        """Test the ``candidates`` likeliest single-edit repairs not run yet; True if any ran."""
        if self.stop.event.is_set():
            return False
        ranked = self._ranked.get(best.program)
        if ranked is None:
            mark = time.perf_counter()
            answers = single_edit_answers(best.program)
            scores = self.backend.score(prompt, answers, self.stop.event)
            record.timings["model"] += time.perf_counter() - mark
            if self.stop.event.is_set():
                return False
            ranked = self._ranked[best.program] = sorted(
                zip(scores, answers), key=lambda pair: -pair[0])
        chosen, base = [], self._base(best)
        while ranked and len(chosen) < self.budget.candidates:
            score, answer = ranked.pop(0)
            proposal = interpret_completion(fmt, Completion(0, answer, 0, "stop"), best.program)
            if proposal.changed and base.land(proposal.program).text not in self.runs:
                chosen.append((score, answer, proposal))
        for index, (score, answer, proposal) in enumerate(chosen):
            if self.stop.event.is_set():
                break
            for step, diff in enumerate(proposal.diffs, 1):
                self.emit(EditProposed(record.round, index, step, diff))
            candidate = CandidateRecord(
                round=record.round, candidate=index, status="tested", program=proposal.program,
                diffs=proposal.diffs, completion=answer, finish_reason=f"ranked (log p {score:.2f})",
                parent=best.key,
            )
            landing = base.land(proposal.program)
            candidate.program = landing.code
            self._try(record, candidate, [base.land(step.new) for step in proposal.steps], landing.text)
        return bool(chosen)

    def _generate(self, record: RoundRecord, fmt: PromptFormat, prompt) -> list[Completion]:
        """Stream the candidates, emitting each diff as it completes (``prompt``: text or chat messages)."""
        budget = self.budget
        request = sampled_request(budget, prompt, k=budget.candidates, stop=fmt.stop_sequences)
        mark = time.perf_counter()
        completions: list[Completion] = []
        for event in self.backend.stream(request, self.stop.event):
            if isinstance(event, EditEvent):
                self.emit(EditProposed(record.round, event.candidate, event.step, event.diff))
            elif isinstance(event, CandidateEvent):
                completions.append(event.completion)
        record.timings["model"] += time.perf_counter() - mark
        return sorted(completions, key=lambda c: c.index)

    def _try(self, record: RoundRecord, candidate: CandidateRecord, steps: list, text: str) -> RunResult | None:
        """Run ``text`` (the whole file) unless that exact file already ran; the run, if any.

        ``steps`` are the candidate's steps as landings (each step's file), empty for round 0.
        """
        self.texts[tuple(candidate.key)] = text
        earlier = self.runs.get(text)
        if earlier is not None:
            candidate.duplicate_of = earlier.key
            _copy_outcome(earlier, candidate)
            self._settle(record, candidate, steps, "duplicate")
            return None
        baseline = self.kept is None
        try:
            result = self.sandbox.run(self._run_ids(), {self.function.path: text}, cancel=self.stop.event)
        except SandboxError as exc:
            raise RefineError(str(exc)) from None
        if baseline:
            self.kept = self._passing_others(result) if result.status not in ("refused", "cancelled") else ()
            self.failing_before = sum(c.bad for c in self._checked(result).tests if self._asked(c.node_id))
        _account(record, result)
        if result.status == "refused":
            candidate.refused.append(result.reason)
            status = "refused"
        elif result.status == "cancelled":
            status = "cancelled"
        else:
            status = "tested"
            self.runs[text] = candidate
            _take_outcome(candidate, self._checked(result), self.budget.feedback_tokens)
        self._settle(record, candidate, steps, status)
        return result

    def _run_ids(self) -> list[str]:
        """Round 0: the failing tests and their files (or the suite); after it, the failing plus the kept."""
        if self.kept is not None:
            return [*self.tests, *self.kept]
        if self.verify == "suite":
            return [*self.tests, defaults.SUITE]
        if self.verify == "files":
            return list(dict.fromkeys([*self.tests, *(test.split("::", 1)[0] for test in self.tests)]))
        return list(self.tests)

    def _asked(self, node_id: str) -> bool:
        return any(matches(node_id, test) for test in self.tests)

    def _passing_others(self, result: RunResult) -> tuple[str, ...]:
        return tuple(c.node_id for c in result.tests if c.outcome == "passed" and not self._asked(c.node_id))

    def _checked(self, result: RunResult) -> RunResult:
        """``result`` with only the tests that decide: the failing ones asked about and the kept ones.

        A kept test missing from a run (its module no longer imports) is a failure, never a pass.
        """
        kept = set(self.kept or ())
        cases = [c for c in result.tests if self._asked(c.node_id) or c.node_id in kept]
        seen = {c.node_id for c in cases}
        cases += [CaseResult(node, "not_run", message="passed before the change; did not run after it")
                  for node in self.kept or () if node not in seen]
        return dataclasses.replace(result, tests=tuple(cases))

    def _settle(self, record: RoundRecord, candidate: CandidateRecord, steps: list, status: str) -> None:
        candidate.status = status
        record.candidates.append(candidate)
        self.records[tuple(candidate.key)] = candidate
        self.step_landings[tuple(candidate.key)] = steps
        self.emit(CandidateTested(
            candidate.round, candidate.candidate, status, candidate.passed, candidate.failed,
            candidate.errors, candidate.total, candidate.green, len(candidate.diffs), candidate.feedback,
        ))

    # -- the result ----------------------------------------------------------------------

    def _result(self, reason: StopReason, repairs: int, seconds: float) -> RefineResult:
        function, best = self.function, self.best
        texts, rounds, notes, previous = [function.source], [], [], None
        for landing, number in zip(self._path(best), self._path_rounds(best)):
            if landing.text != texts[-1]:
                texts.append(landing.text)
                rounds.append(number)
                notes.append(landing.note_since(previous))  # what this step dropped that the last did not
                previous = landing
        diffs = [file_diff(old, new, function.path) for old, new in zip(texts, texts[1:])]
        return RefineResult(
            path=function.path, function=function.qualname, instruction=self.instruction,
            verified=best.green, reason=reason, rounds=repairs, original=function.source, final=texts[-1],
            diffs=diffs, diff=file_diff(function.source, texts[-1], function.path), best=best,
            trajectory=self.rounds, seconds=seconds, step_rounds=rounds, step_notes=notes,
            checked={"verify": self.verify, "failing": self.failing_before,
                     "kept": max(0, best.total - self.failing_before)},
        )

    def _path(self, candidate: CandidateRecord) -> Sequence[Landing]:
        """Every step from the original code to ``candidate``, as landed in the file."""
        if candidate.parent is None:
            return self.step_landings[tuple(candidate.key)]
        parent = self.records[tuple(candidate.parent)]
        return [*self._path(parent), *self.step_landings[tuple(candidate.key)]]

    def _path_rounds(self, candidate: CandidateRecord) -> Sequence[int]:
        """The round of every step of :meth:`_path`, so each step can cite the failure that prompted it."""
        rounds = [candidate.round] * len(self.step_landings[tuple(candidate.key)])
        if candidate.parent is None:
            return rounds
        return [*self._path_rounds(self.records[tuple(candidate.parent)]), *rounds]


def model_profile(backend: Backend, prompt_format: str = defaults.PROMPT_FORMAT) -> ModelProfile:
    """The backend's profile of its model; a ``prompt_format`` setting other than ``auto`` comes first.

    A backend without a profile is taken for a model trained here (LintSeq and CYCLE).
    """
    ask = getattr(backend, "profile", None)
    profile = ask() if callable(ask) else ModelProfile(("lintseq", "cycle"), None, "defaults")
    if prompt_format != "auto" and profile.formats[:1] != (prompt_format,):
        formats = (prompt_format, *(f for f in profile.formats if f != prompt_format))
        profile = ModelProfile(formats, profile.repair, "setting")
    return profile


def prompt_payload(fmt: PromptFormat, request: PromptRequest):
    """What goes to the backend: chat messages for a chat format, else the prompt text."""
    return fmt.chat(request) if isinstance(fmt, ChatFormat) else fmt.build(request)


def _strategy(backend: Backend, wanted: str, profile: ModelProfile | None) -> str:
    """``wanted``, or for ``auto`` the model's profile's; ``rank`` needs a backend that scores.

    ``auto`` on a ranking model behind a server (which cannot score) asks it for CYCLE diffs instead,
    which such a model was trained on too.
    """
    scores = callable(getattr(backend, "score", None))
    if wanted == "auto":
        wanted = profile.strategy
        if wanted == "rank" and not scores:
            wanted = "generate" if "cycle" in profile.formats else "rewrite"
    if wanted == "rank" and not scores:
        raise RefineError(f"the {getattr(backend, 'name', 'model')} backend cannot score answers, so it "
                          "cannot rank edits; use the generate strategy")
    return wanted


#: How a run that never got to the tests ends (the sandbox's reasons): the environment, not the code.
_NOT_STARTED = ("pytest did not start", "pytest refused the arguments", "pytest ended with exit status")


def _check_test_ids(result: RunResult) -> None:
    """A requested id that matches no test is a mistake in the request, not a red test; a sandbox where
    pytest cannot start (a broken plugin, an INTERNALERROR, bad options) is an error, not 0 tests passed."""
    if result.status == "crashed" and result.reason.startswith(_NOT_STARTED):
        raise RefineError(f"the tests cannot run in the sandbox: {result.reason}")
    for test in result.tests:
        if test.phase == "collect" and test.message.startswith(_NOT_FOUND):
            raise RefineError(test.message)


def _account(record: RoundRecord, result: RunResult) -> None:
    timings = result.timings
    record.timings["pytest"] += timings.get("pytest", 0.0)
    record.timings["sandbox"] += sum(v for k, v in timings.items() if k != "pytest")


def _take_outcome(candidate: CandidateRecord, result: RunResult, feedback_tokens: int) -> None:
    candidate.passed, candidate.failed, candidate.errors = result.passed, result.failed, result.errors
    candidate.total, candidate.green, candidate.run_status = len(result.tests), result.green, result.status
    candidate.feedback = execution_feedback(result, max_tokens=feedback_tokens)


def _copy_outcome(earlier: CandidateRecord, candidate: CandidateRecord) -> None:
    for name in ("passed", "failed", "errors", "total", "green", "run_status", "feedback"):
        setattr(candidate, name, getattr(earlier, name))
