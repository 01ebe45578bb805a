"""Prompt formats: what the model is shown, where it stops, and how its answer is read back.

Every format is registered by name (:func:`get_format`) and offers the same
four things: :meth:`~PromptFormat.build` a prompt from a :class:`PromptRequest`,
``stop_sequences`` (strings that end generation besides the tokenizer's EOS),
:meth:`~PromptFormat.parse` a completion into a :class:`ParsedAnswer`, and
:meth:`~PromptFormat.render_answer`, the exact answer text the format expects
(for training data, and so that every format round-trips in the tests).

``lintseq``
    ``instruction + "\\n<|diff|>"``; the answer is ``<|diff|>``-separated
    insertion diffs ending with two empty ones. This is the format of the
    public ``upiter/TinyCodeLM-*-LintSeqInstruct`` models, byte for byte.
    With ``feedback`` (the refine loop's ``rewrite`` strategy) the failure is
    appended to the instruction as context and the model writes the function
    again from an empty file: the only task those models were tuned for.
``cycle`` / ``cycle-program``
    The CYCLE repair prompt (problem, faulty code and execution feedback as
    ``# `` comment lines, in the paper's ``REFINE_TEMPLATE``). ``cycle-program``
    is the paper's answer: the whole good program after ``### Good solution:``.
    ``cycle`` is ours: the same context, then a diff sequence against the
    faulty code, so the fix reaches the editor as reviewable steps.
``chat``
    For instruct models with a chat template: system and user messages
    (:meth:`ChatFormat.messages`), rendered by the model's own template (the
    in-process backend) or sent as they are to ``/v1/chat/completions``,
    asking for one unified diff in a fenced block.

Parsing never raises on model output. What cannot be used is listed in
``ParsedAnswer.skipped`` with a reason; in a diff sequence, everything after
the first malformed diff is skipped too, since later diffs are positioned
against a file that includes it. Applying the diffs (and checking that the
result parses) is :mod:`model_runtime.edits.diff_apply`'s job, with ``diff_kind``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from model_runtime.edits.diff_apply import DiffError, DiffKind, parse_diff, python_syntax_error
from model_runtime.edits.editpath import DIFF_TOKEN, format_prompt, format_training_text, split_edits

__all__ = [
    "FORMATS",
    "TIMEOUT_FEEDBACK",
    "ChatFormat",
    "CycleFormat",
    "LintSeqFormat",
    "ParsedAnswer",
    "PromptFormat",
    "PromptRequest",
    "Skipped",
    "comparison_feedback",
    "error_feedback",
    "failed_test_feedback",
    "get_format",
]

#: Ends a diff sequence: the two empty edits LintSeq training puts before EOS.
SEQUENCE_END = "\n" + DIFF_TOKEN + "\n" + DIFF_TOKEN

#: CYCLE's feedback for a test that ran out of time.
TIMEOUT_FEEDBACK = "timed out"


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """What a prompt is about.

    ``instruction`` is the task (for a function, see
    :func:`model_runtime.prompting.instruction.build_instruction`); ``code`` the code to
    repair or edit (empty: write from scratch); ``feedback`` the execution
    feedback for a repair (see :func:`failed_test_feedback`).
    """

    instruction: str
    code: str = ""
    feedback: str = ""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A piece of the completion that was not used, and why."""

    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """A parsed completion: diff steps (apply them with ``diff_kind``) or a whole program."""

    diffs: tuple[str, ...] = ()
    program: str | None = None
    diff_kind: DiffKind | None = None
    skipped: tuple[Skipped, ...] = ()


class PromptFormat(Protocol):
    """What every registered format offers."""

    name: str
    #: ``"diffs"`` or ``"program"``: what :meth:`parse` returns and :meth:`render_answer` takes.
    answer: Literal["diffs", "program"]
    stop_sequences: tuple[str, ...]

    def build(self, request: PromptRequest) -> str: ...

    def parse(
        self, completion: str, *, eos_token: str | None = None, truncated: bool = False
    ) -> ParsedAnswer:
        """Read a completion (the text after the prompt).

        ``truncated`` says generation hit its token limit, so the last piece is
        incomplete and is skipped rather than applied half-written.
        """
        ...

    def render_answer(self, answer: str | Sequence[str], eos_token: str = "") -> str: ...


# --------------------------------------------------------------------------- feedback


def failed_test_feedback(
    assertion: str,
    *,
    input: str | None = None,
    expected: str | None = None,
    actual: str | None = None,
    error: str = "AssertionError",
) -> str:
    """CYCLE's feedback for a failing assertion (notes §2.3).

    With input, expected and actual known: ``Test Case Failed: <assertion>,
    Input: "<x>", Expected output: "<y>", Actual output: "<z>"``; otherwise the
    artifact's fallback naming the failing line, with ``error`` (the
    assertion's own message where it has one, e.g. doctest's report).
    """
    if input is None or expected is None or actual is None:
        return f"Test Case Failed: Failed at line: {assertion}, Error: {error}"
    return (
        f'Test Case Failed: {assertion}, Input: "{input}", '
        f'Expected output: "{expected}", Actual output: "{actual}"'
    )


def comparison_feedback(assertion: str, *, expected: str, actual: str) -> str:
    """:func:`failed_test_feedback` for an ``assert actual == expected`` whose input is unknown.

    CYCLE always knew the input (its asserts were ``f(x) == y``); a pytest
    assert often compares a variable, and the two values are still the most
    useful part, so only ``Input`` is left out.
    """
    return f'Test Case Failed: {assertion}, Expected output: "{expected}", Actual output: "{actual}"'


def error_feedback(line: str, error: str) -> str:
    """CYCLE's feedback for an exception: the source line that raised and the message."""
    return f"Failed at line: {line}; Error: {error}"


# --------------------------------------------------------------------------- shared parsing


def _cut_at(text: str, markers: Sequence[str]) -> tuple[str, str]:
    """``text`` up to the first of ``markers``, and what follows the marker."""
    cuts = [(text.find(m), m) for m in markers if m and m in text]
    if not cuts:
        return text, ""
    at, marker = min(cuts)
    return text[:at], text[at + len(marker) :]


def _parse_diff_sequence(
    completion: str, eos_token: str | None, truncated: bool, kind: DiffKind
) -> ParsedAnswer:
    """Split ``<|diff|>``-separated diffs; keep the well-formed prefix, skip the rest with reasons."""
    if eos_token:
        completion = completion.split(eos_token, 1)[0]
    body, rest = _cut_at(completion, [SEQUENCE_END])
    pieces = split_edits(body)
    tail = []
    if truncated and pieces:
        tail.append(Skipped(pieces.pop(), "generation hit its token limit inside this diff"))
    if rest.strip():
        tail.append(Skipped(rest, "text after the end of the diff sequence"))
    diffs: list[str] = []
    skipped: list[Skipped] = []
    for number, piece in enumerate(pieces, start=1):
        if skipped:
            skipped.append(Skipped(piece, f"diff {number}: follows a malformed diff"))
            continue
        try:
            parse_diff(piece)
        except DiffError as exc:
            skipped.append(Skipped(piece, f"diff {number}: {exc}"))
            continue
        diffs.append(piece)
    return ParsedAnswer(diffs=tuple(diffs), diff_kind=kind, skipped=(*skipped, *tail))


def _render_diff_sequence(diffs: Sequence[str], eos_token: str) -> str:
    """The answer exactly as LintSeq training text has it after the prompt."""
    return format_training_text("", diffs, eos_token).removeprefix(format_prompt(""))


# --------------------------------------------------------------------------- lintseq


class LintSeqFormat:
    """The public LintSeq models' format: write a program from scratch as insertion diffs."""

    name = "lintseq"
    answer = "diffs"
    stop_sequences = (SEQUENCE_END,)

    def build(self, request: PromptRequest) -> str:
        if request.code:
            raise ValueError(
                "lintseq prompts start from an empty file; use 'cycle' or 'chat' to edit code"
            )
        if not request.feedback.strip():
            return format_prompt(request.instruction)
        context = (f"{request.instruction.rstrip(chr(10))}\n\nAn earlier version failed its tests:\n"
                   f"```\n{request.feedback.strip(chr(10))}\n```\nWrite a version that passes them.")
        return format_prompt(context)

    def parse(
        self, completion: str, *, eos_token: str | None = None, truncated: bool = False
    ) -> ParsedAnswer:
        return _parse_diff_sequence(completion, eos_token, truncated, "lintseq")

    def render_answer(self, answer: Sequence[str], eos_token: str = "") -> str:
        return _render_diff_sequence(answer, eos_token)


# --------------------------------------------------------------------------- cycle

_BAD = "### Bad Solution:"
_FAILURE = "### Execution Failure:"
_GOOD = "### Good solution:"
_DIFFS = "### Good solution as diffs against the bad solution:"
_FENCE = re.compile(r"^```[\w+-]*\n(.*?)\n?```\s*$", re.DOTALL)


class CycleFormat:
    """The CYCLE repair prompt, answered with a whole program (the paper) or diffs (ours).

    The prompt is the problem followed by the paper's ``REFINE_TEMPLATE``::

        ### Bad Solution:

        # <faulty line>...

        ### Execution Failure:
        # <feedback line>...

        ### Good solution:

    indented like the faulty code's first line (a HumanEval completion is a
    function body, so the block sits inside the function). The diff variant
    differs only in the last header, so both read the same context; its diffs
    are numbered against the faulty code without the ``# `` prefixes.
    """

    def __init__(self, answer: Literal["diffs", "program"] = "diffs") -> None:
        if answer not in ("diffs", "program"):
            raise ValueError(f"answer must be 'diffs' or 'program', not {answer!r}")
        self.answer = answer
        self.name = "cycle" if answer == "diffs" else "cycle-program"
        self.stop_sequences = (SEQUENCE_END,) if answer == "diffs" else (_BAD, _FAILURE, _GOOD)

    def build(self, request: PromptRequest) -> str:
        if not request.code.strip():
            raise ValueError("a cycle prompt needs the faulty code to repair")
        indent = re.match(r"[ \t]*", next(l for l in request.code.split("\n") if l.strip())).group()
        block = "\n".join(
            [
                _BAD,
                "",
                *("# " + line for line in request.code.split("\n")),
                "",
                _FAILURE,
                *("# " + line for line in request.feedback.split("\n")),
                "",
                _DIFFS if self.answer == "diffs" else _GOOD,
            ]
        )
        problem = request.instruction
        if problem and not problem.endswith("\n"):
            problem += "\n"
        prompt = problem + textwrap.indent(block, indent)
        return format_prompt(prompt) if self.answer == "diffs" else prompt + "\n"

    def parse(
        self, completion: str, *, eos_token: str | None = None, truncated: bool = False
    ) -> ParsedAnswer:
        if self.answer == "diffs":
            return _parse_diff_sequence(completion, eos_token, truncated, "unified")
        if truncated:
            return ParsedAnswer(
                skipped=(Skipped(completion, "generation hit its token limit before the program ended"),)
            )
        text, _ = _cut_at(completion, [eos_token or "", *self.stop_sequences])
        text = text.strip("\n")
        fenced = _FENCE.match(text.strip())
        if fenced:
            text = fenced.group(1)
        program = text.rstrip()
        if not program.strip():
            return ParsedAnswer(skipped=(Skipped(completion, "empty answer"),))
        problem = python_syntax_error(textwrap.dedent(program))
        if problem:
            return ParsedAnswer(skipped=(Skipped(program, f"the program does not parse: {problem}"),))
        return ParsedAnswer(program=program)

    def render_answer(self, answer: str | Sequence[str], eos_token: str = "") -> str:
        if self.answer == "diffs":
            return _render_diff_sequence(answer, eos_token)
        return answer + eos_token


# --------------------------------------------------------------------------- chat

DEFAULT_SYSTEM = (
    "You are a careful Python programmer. You change code by answering with exactly one "
    "unified diff in a ```diff fenced block: hunk headers '@@ -a,b +c,d @@', a few unchanged "
    "context lines, '-' for removed and '+' for added lines. No other code blocks."
)
_HUNK_HEADER = re.compile(r"^@@ -\d+(,\d+)? \+\d+(,\d+)? @@")
_DIFF_LINE = re.compile(r"^([-+ \\@]|$)")


@dataclass(frozen=True, slots=True)
class _Block:
    lang: str
    text: str
    closed: bool


def _fenced_blocks(reply: str) -> list[_Block]:
    blocks, lang, lines = [], None, []
    for line in reply.split("\n"):
        stripped = line.strip()
        if lang is None and stripped.startswith("```"):
            lang, lines = stripped[3:].strip().lower(), []
        elif lang is not None and stripped == "```":
            blocks.append(_Block(lang, "\n".join(lines), True))
            lang = None
        elif lang is not None:
            lines.append(line)
    if lang is not None:
        blocks.append(_Block(lang, "\n".join(lines), False))
    return blocks


def _is_diff(block: _Block) -> bool:
    return block.lang in ("diff", "patch", "udiff") or any(
        _HUNK_HEADER.match(line) for line in block.text.split("\n")
    )


def _bare_diff(reply: str) -> str:
    """A diff written without a fence: from its first header to the last diff-like line."""
    lines = reply.split("\n")
    start = next(
        (i for i, l in enumerate(lines) if l.startswith("--- ") or _HUNK_HEADER.match(l)), None
    )
    if start is None:
        return ""
    end = start + 1
    while end < len(lines) and _DIFF_LINE.match(lines[end]):
        end += 1
    return "\n".join(lines[start:end]).strip("\n")


class ChatFormat:
    """Instruct models with a chat template: ask for one unified diff in a fenced block.

    The model's own template builds the prompt (:meth:`build`, given the
    tokenizer) or the server's does (:meth:`chat` messages sent over HTTP), so
    turn markers are exactly what the model was tuned on. Templates that
    reject a system role (Gemma's raise) get the system text at the top of the
    user message instead.
    """

    name = "chat"
    answer = "diffs"
    stop_sequences: tuple[str, ...] = ()

    def __init__(self, tokenizer: Any = None, system: str = DEFAULT_SYSTEM) -> None:
        if tokenizer is not None and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "the tokenizer has no chat template; use the 'lintseq' or 'cycle' format"
            )
        self.tokenizer = tokenizer
        self.system = system

    def chat(self, request: PromptRequest) -> tuple[tuple[str, str], ...]:
        """:meth:`messages` as the ``(role, content)`` pairs a :class:`GenerationRequest` carries."""
        return tuple((m["role"], m["content"]) for m in self.messages(request))

    def messages(self, request: PromptRequest) -> list[dict[str, str]]:
        """The conversation: the system rules, then the task, the code and any feedback."""
        parts = [request.instruction.strip()]
        if request.code:
            parts.append(f"Current code:\n```python\n{request.code.rstrip(chr(10))}\n```")
        else:
            parts.append("The file is empty: write the code as a diff that adds it (@@ -0,0 +1,N @@).")
        if request.feedback:
            parts.append(f"Running the tests failed:\n{request.feedback.strip()}")
        parts.append("Answer with one unified diff against the current code in a ```diff block.")
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def build(self, request: PromptRequest) -> str:
        """The prompt text through the tokenizer's template; without a tokenizer, a readable transcript."""
        if self.tokenizer is None:
            return "\n\n".join(f"[{role}]\n{content}" for role, content in self.chat(request))
        from model_runtime.backends.transformers_backend import render_chat

        return render_chat(self.tokenizer, self.chat(request))

    def parse(
        self, completion: str, *, eos_token: str | None = None, truncated: bool = False
    ) -> ParsedAnswer:
        eos = eos_token if eos_token is not None else getattr(self.tokenizer, "eos_token", None)
        reply, _ = _cut_at(completion, [eos or ""])
        blocks = [b for b in _fenced_blocks(reply) if _is_diff(b)]
        skipped = []
        if not blocks:
            diff = _bare_diff(reply)
            if not diff:
                reason = "the reply holds no diff (no ```diff block, no @@ hunk header)"
                return ParsedAnswer(diff_kind="unified", skipped=(Skipped(reply, reason),))
            blocks = [_Block("diff", diff, not truncated)]
        first, *others = blocks
        skipped += [Skipped(b.text, "only the first diff in a reply is used") for b in others]
        if not first.closed or truncated:
            reason = "the diff block is not closed: the reply was cut short"
            return ParsedAnswer(diff_kind="unified", skipped=(Skipped(first.text, reason), *skipped))
        try:
            parse_diff(first.text)
        except DiffError as exc:
            return ParsedAnswer(diff_kind="unified", skipped=(Skipped(first.text, str(exc)), *skipped))
        return ParsedAnswer(diffs=(first.text,), diff_kind="unified", skipped=tuple(skipped))

    def render_answer(self, answer: Sequence[str], eos_token: str = "") -> str:
        if len(answer) != 1:
            raise ValueError("a chat answer holds exactly one diff")
        return f"Here is the change:\n\n```diff\n{answer[0]}\n```{eos_token}"


# --------------------------------------------------------------------------- registry

FORMATS: dict[str, Callable[..., PromptFormat]] = {
    "lintseq": LintSeqFormat,
    "cycle": lambda: CycleFormat("diffs"),
    "cycle-program": lambda: CycleFormat("program"),
    "chat": ChatFormat,
}


def get_format(name: str, **options: Any) -> PromptFormat:
    """The format called ``name``; ``options`` go to its constructor (``chat`` needs ``tokenizer``)."""
    try:
        factory = FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown prompt format {name!r}; choose one of {', '.join(FORMATS)}") from None
    return factory(**options)
