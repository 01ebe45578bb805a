"""Write an empty function edit by edit when no test can check it yet.

The language server offers "write <name> edit by edit" on a stub with a
docstring even where no test names the function; :func:`~model_runtime.refine.loop.refine`
needs tests, so this is its round 0 alone: the ``lintseq`` prompt from the
instruction, the model's insertion diffs applied (each step must parse, as
everywhere, via :func:`~model_runtime.prompting.proposals.interpret_completion`), every
step spliced back into the file. Nothing runs, so nothing is verified; each
step is linted (pyflakes) instead, which is what LintSeq promises of a step
and what the editor can cite for it.

LintSeq models write the function without its docstring (their training cut
it into the instruction); the user's docstring is put back into every step,
so accepting a step never deletes documentation.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from pathlib import Path

from model_runtime.backends.base import Backend, CandidateEvent, EditEvent, sampled_request
from model_runtime.lintseq.linters import LintMessage, PyflakesLinter
from model_runtime.prompting.formats import PromptRequest, get_format
from model_runtime.prompting.proposals import Proposal, interpret_completion

from .events import EditProposed
from .loop import EventSink, RefineBudget, RefineTarget, function_instruction
from .target import RefineError, file_diff, locate_function, read_source

__all__ = ["WriteResult", "write_function"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The steps of one written function: ``diffs`` chain from ``original`` to ``final`` like
    :attr:`~model_runtime.refine.events.RefineResult.diffs`; ``lint[i]`` is what pyflakes says
    about the file after step ``i + 1`` (empty: clean)."""

    path: str
    function: str
    instruction: str
    original: str
    final: str
    diffs: list[str]
    lint: list[list[LintMessage]]
    refused: list[str]
    cancelled: bool


def write_function(
    target: RefineTarget,
    backend: Backend,
    *,
    source: str | None = None,
    budget: RefineBudget = RefineBudget(),
    on_event: EventSink | None = None,
    cancel: threading.Event | None = None,
    prompt_format: str = "lintseq",
) -> WriteResult:
    """Ask the model to write ``target`` (an empty function) and return its steps.

    ``prompt_format`` is the registered prompt format the model writes in.

    Raises :class:`RefineError` when the function is missing or already has a body.
    """
    if source is None:
        source = read_source(Path(target.workspace).resolve(), target.path)
    function = locate_function(source, target.function, target.path)
    if not function.empty:
        raise RefineError(f"`{target.function}` already has a body: refine it against its tests instead")
    instruction = function_instruction(source, target.function, budget.instruction_tokens)
    fmt = get_format(prompt_format)
    request = sampled_request(budget, fmt.build(PromptRequest(instruction)), k=budget.candidates,
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
    texts = [source]
    if best is not None and not cancelled:
        for step in best.steps:
            text = function.splice(_with_docstring(function.code, step.new, target.function))
            if text != texts[-1]:
                texts.append(text)
    linter = PyflakesLinter()
    return WriteResult(
        path=target.path, function=target.function, instruction=instruction, original=source,
        final=texts[-1], diffs=[file_diff(a, b, target.path) for a, b in zip(texts, texts[1:])],
        lint=[linter.lint(text) for text in texts[1:]],
        refused=[f"step {r.step}: {r.reason}" for r in best.refused] if best else [],
        cancelled=cancelled,
    )


def _with_docstring(original: str, program: str, qualname: str) -> str:
    """``program`` with the original function's docstring, if the model's def lacks one."""
    name = qualname.rpartition(".")[2]
    try:
        old, new = ast.parse(original).body[-1], ast.parse(program)
    except SyntaxError:
        return program
    doc = old.body[0] if old.body and ast.get_docstring(old) is not None else None
    target = next((n for n in new.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and n.name == name), None)
    if doc is None or target is None or ast.get_docstring(target) is not None:
        return program
    old_lines, new_lines = original.split("\n"), program.split("\n")
    doc_lines = old_lines[doc.lineno - 1 : doc.end_lineno]
    first = new_lines[target.body[0].lineno - 1]
    if first[: len(first) - len(first.lstrip())] != doc_lines[0][: len(doc_lines[0]) - len(doc_lines[0].lstrip())]:
        return program  # a different indentation: better no docstring than a broken one
    at = target.body[0].lineno - 1
    return "\n".join(new_lines[:at] + doc_lines + new_lines[at:])
