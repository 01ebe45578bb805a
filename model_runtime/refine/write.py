"""Write an empty function edit by edit when no test can check it yet.

The language server offers "write <name> edit by edit" on a stub with a
docstring even where no test names the function; :func:`~model_runtime.refine.loop.refine`
needs tests, so this is its round 0 alone: the ``lintseq`` prompt from the
instruction, the model's insertion diffs applied (each step must parse, as
everywhere, via :func:`~model_runtime.prompting.proposals.interpret_completion`), every
step landed in the file (:meth:`~model_runtime.refine.target.FunctionTarget.land`:
the function in place of the stub, new imports in the import block, helpers it
uses above it, usage examples left out). Nothing runs, so nothing is verified;
each step is linted (pyflakes) instead, which is what LintSeq promises of a
step and what the editor can cite for it.

LintSeq models write the function without its docstring (their training cut
it into the instruction); the user's docstring is put back into every step,
so accepting a step never deletes documentation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from model_runtime.backends.base import Backend, CandidateEvent, EditEvent, sampled_request
from model_runtime.lintseq.linters import LintMessage, PyflakesLinter
from model_runtime.prompting.formats import PromptRequest, get_format
from model_runtime.prompting.proposals import Proposal, interpret_completion

from .events import EditProposed
from .loop import EventSink, RefineBudget, RefineTarget, function_instruction, model_profile, prompt_payload
from .target import Landing, RefineError, file_diff, locate_function, read_source, with_docstring

__all__ = ["WriteResult", "write_function"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The steps of one written function: ``diffs`` chain from ``original`` to ``final`` like
    :attr:`~model_runtime.refine.events.RefineResult.diffs`; ``lint[i]`` is what pyflakes says
    about the file after step ``i + 1`` (empty: clean); ``notes[i]`` what landing that step
    left out or added besides the function (``""``: nothing new, see
    :meth:`~model_runtime.refine.target.Landing.note_since`)."""

    path: str
    function: str
    instruction: str
    original: str
    final: str
    diffs: list[str]
    lint: list[list[LintMessage]]
    refused: list[str]
    cancelled: bool
    notes: list[str] = field(default_factory=list)


def write_function(
    target: RefineTarget,
    backend: Backend,
    *,
    source: str | None = None,
    budget: RefineBudget = RefineBudget(),
    on_event: EventSink | None = None,
    cancel: threading.Event | None = None,
    prompt_format: str = "auto",
) -> WriteResult:
    """Ask the model to write ``target`` (an empty function) and return its steps.

    ``prompt_format`` is the format the model writes in (``auto``: the model's profile; a chat
    model is asked for one diff that adds the function).

    Raises :class:`RefineError` when the function is missing or already has a body.
    """
    if source is None:
        source = read_source(Path(target.workspace).resolve(), target.path)
    function = locate_function(source, target.function, target.path)
    if not function.empty:
        raise RefineError(f"`{target.function}` already has a body: refine it against its tests instead")
    instruction = function_instruction(source, target.function, budget.instruction_tokens)
    fmt = get_format(model_profile(backend, prompt_format).writes)
    request = sampled_request(budget, prompt_payload(fmt, PromptRequest(instruction)), k=budget.candidates,
                              stop=fmt.stop_sequences)
    emit = on_event or (lambda event: None)
    proposals: list[Proposal] = []
    for event in backend.stream(request, cancel):
        if isinstance(event, EditEvent):
            emit(EditProposed(0, event.candidate, event.step, event.diff))
        elif isinstance(event, CandidateEvent):
            proposals.append(interpret_completion(fmt, event.completion, ""))
    cancelled = cancel is not None and cancel.is_set()
    best = max(proposals, key=lambda p: (len(p.steps), -len(p.refused), -p.candidate), default=None)
    texts, notes, landed = [source], [], None
    refused = [f"step {r.step}: {r.reason}" for r in best.refused] if best else []
    problem = _not_the_function(function, best.program) if best is not None and best.steps else None
    if problem is not None:  # "write" keeps the function: nothing lands, and the reason is said
        refused.insert(0, problem)
    elif best is not None and not cancelled:
        for step in best.steps:
            landing: Landing = function.land(with_docstring(function.code, step.new, target.function))
            if landing.text != texts[-1]:  # e.g. a step that only adds a usage example lands nothing
                texts.append(landing.text)
                notes.append(landing.note_since(landed))
                landed = landing
    linter = PyflakesLinter()
    return WriteResult(
        path=target.path, function=target.function, instruction=instruction, original=source,
        final=texts[-1], diffs=[file_diff(a, b, target.path) for a, b in zip(texts, texts[1:])],
        lint=[linter.lint(text) for text in texts[1:]],
        refused=refused, cancelled=cancelled, notes=notes,
    )


def _not_the_function(function, program: str) -> str | None:
    """Why ``program`` does not write ``function`` (no def of its name, another signature), or ``None``.

    A tiny model once turned ``count_vowels(s)`` into ``def conjugate(self)``;
    a written function must be the one asked for, with the stub's signature.
    """
    import ast

    name = function.qualname.rpartition(".")[2]
    try:
        stub = next(n for n in ast.parse(function.code).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        defs = [n for n in ast.parse(program).body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    except (SyntaxError, ValueError, RecursionError, MemoryError, StopIteration):
        return f"the answer cannot be checked against `{name}`"
    if not defs:
        return f"the answer does not define `{name}`"
    wanted, got = ast.unparse(stub.args), ast.unparse(defs[-1].args)
    if wanted != got:
        return f"the answer changes the signature of `{name}`: ({wanted}) became ({got})"
    return None
