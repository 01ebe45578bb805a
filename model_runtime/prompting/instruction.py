"""The instruction that asks a model to write one function, built from the user's file.

The public LintSeq models were tuned on HumanEvalPack-style instructions
("Write a Python function `sig` to solve the following problem:" followed by
the docstring), so that sentence leads. What the model cannot see otherwise
follows as a Python stub: the module's imports, the enclosing class header and
the signatures of the other top-level functions and classes.

Truncation policy (the instruction must fit the model's context, minus room
for the answer, which the caller passes as ``max_tokens``):

1. The signature sentence and the docstring are always kept.
2. Context items are dropped one at a time, the one furthest (in lines) from
   the function first, ties broken by dropping the later one, until the text
   fits. The nearest context, which is the most likely to matter, survives
   longest.
3. If even the signature and docstring do not fit, :class:`InstructionTooLong`
   is raised: a docstring cut short would ask for a different function.

Token counts come from ``count_tokens``, so any tokenizer can be plugged in;
the default :func:`estimate_tokens` over-estimates on purpose.

Cost: a training scan builds one instruction per documented function of a
module, so :class:`InstructionBuilder` keeps what does not depend on the
function (each context item's stub text, line and UTF-8 size). With the
default estimate, which depends on the text's size only, the step of rule 2
where the text fits is found by arithmetic on those sizes, and the text is
rendered once, instead of once per dropped item; the result is the same,
byte for byte.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import libcst as cst
from libcst._nodes.internal import CodegenState
from model_runtime.errors import EditseqError

__all__ = [
    "Instruction",
    "InstructionBuilder",
    "InstructionTooLong",
    "build_instruction",
    "estimate_tokens",
]

_STUB_BODY = cst.SimpleStatementSuite([cst.Expr(cst.Ellipsis())])
_Def = cst.FunctionDef | cst.ClassDef


def estimate_tokens(text: str) -> int:
    """A cheap token estimate: one token per 3 UTF-8 bytes, rounded up.

    Byte-level BPE tokenizers trained on code average 3 to 4 bytes per token
    on Python, so this errs toward too many tokens, the safe side of a budget.
    """
    return _tokens_for_bytes(len(text.encode("utf-8")))


def _tokens_for_bytes(size: int) -> int:
    """:func:`estimate_tokens` of any text of ``size`` UTF-8 bytes."""
    return math.ceil(size / 3)


class InstructionTooLong(EditseqError, ValueError):
    """Even the signature and docstring exceed the token budget."""


@dataclass(frozen=True, slots=True)
class Instruction:
    """The instruction text, its token count, and the context items left out (furthest first)."""

    text: str
    tokens: int
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Item:
    """One piece of context: its stub text, its line in the file and its distance to the function."""

    text: str
    line: int
    distance: int


def build_instruction(
    source: str,
    function: str,
    *,
    max_tokens: int,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> Instruction:
    """The instruction for ``function`` (``name`` or ``Class.method``) in ``source``.

    Raises ``LookupError`` if there is no such function, ``libcst.ParserSyntaxError``
    if ``source`` does not parse, and :class:`InstructionTooLong` (see the module
    docstring for the truncation policy).
    """
    return InstructionBuilder(source).build(function, max_tokens=max_tokens, count_tokens=count_tokens)


class InstructionBuilder:
    """Parses a module once and builds instructions for any of its functions.

    Training data from a repository asks for one instruction per documented
    function; parsing the file again for each would dominate the scan, and so
    would redoing for each what does not depend on the function. From the
    first :meth:`build` on, the builder keeps the start line of every
    definition and simple statement (one code generation pass; libcst's
    ``MetadataWrapper`` would deep-copy the module and record a position for
    every node), the stub text, line and UTF-8 size of each top-level import
    and definition, and the stubs of enclosing classes. A build then costs its
    own signature and docstring and a sort of the items by distance.
    """

    def __init__(self, source: str | cst.Module) -> None:
        self.module = cst.parse_module(source) if isinstance(source, str) else source
        self._lines: dict[cst.CSTNode, int] | None = None
        #: Top-level imports and definitions in file order: (node, stub text, line).
        self._top: list[tuple[cst.CSTNode, str, int]] | None = None
        self._class_stubs: dict[tuple[cst.ClassDef, int], str] = {}
        self._sizes: dict[str, int] = {}

    def build(
        self,
        function: str,
        *,
        max_tokens: int,
        count_tokens: Callable[[str], int] = estimate_tokens,
    ) -> Instruction:
        """See :func:`build_instruction`."""
        module = self.module
        chain = _find(module, function.split("."))
        target = chain[-1]
        if not isinstance(target, cst.FunctionDef):
            raise LookupError(f"`{function}` is a class, not a function")
        here = self._start_lines()[target]
        head = _head(module, target, [c for c in chain[:-1] if isinstance(c, cst.ClassDef)])
        items = self._context(chain, here)

        kept = sorted(items, key=lambda item: item.line)
        victims = sorted(items, key=lambda item: (item.distance, item.line), reverse=True)
        if count_tokens is estimate_tokens and victims:
            return self._fit_estimated(function, head, kept, victims, max_tokens)
        dropped: list[str] = []
        for victim in victims:
            text = _render(head, kept)
            tokens = count_tokens(text)
            if tokens <= max_tokens:
                return Instruction(text, tokens, tuple(dropped))
            kept.remove(victim)
            dropped.append(victim.text)
        return _head_only(function, head, count_tokens(head), max_tokens, dropped)

    def _fit_estimated(
        self, function: str, head: str, kept: list[_Item], victims: list[_Item], max_tokens: int
    ) -> Instruction:
        """:meth:`build`'s drop loop for :func:`estimate_tokens`, rendering only the text returned.

        The estimate depends on the UTF-8 size alone, and :func:`_render`'s
        text is the head, a fixed frame and the items joined by newlines, so
        each step's size is the previous one less the victim's size and its
        newline.
        """
        sizes = self._sizes
        for item in kept:
            if item.text not in sizes:
                sizes[item.text] = len(item.text.encode("utf-8"))
        head_size = len(head.encode("utf-8"))
        size = head_size + _FRAME_SIZE + sum(sizes[item.text] for item in kept) + len(kept) - 1
        for step, victim in enumerate(victims):
            tokens = _tokens_for_bytes(size)
            if tokens <= max_tokens:
                gone = victims[:step]
                for item in gone:
                    kept.remove(item)
                return Instruction(_render(head, kept), tokens, tuple(item.text for item in gone))
            size -= sizes[victim.text] + 1
        dropped = [item.text for item in victims]
        return _head_only(function, head, _tokens_for_bytes(head_size), max_tokens, dropped)

    def _start_lines(self) -> dict[cst.CSTNode, int]:
        if self._lines is None:
            self._lines = _start_lines(self.module)
        return self._lines

    def _context(self, chain: list[_Def], here: int) -> list[_Item]:
        """Imports, enclosing class headers and other top-level signatures, with distances."""
        if self._top is None:
            self._top = _top_items(self.module, self._start_lines())
        outer = chain[0]
        items = [_Item(text, line, abs(here - line)) for node, text, line in self._top if node is not outer]
        for depth, node in enumerate(chain[:-1]):
            if isinstance(node, cst.ClassDef):
                text = self._class_stubs.get((node, depth))
                if text is None:
                    indent = "    " * depth
                    text = indent + _stub(self.module, node).replace("\n", "\n" + indent)
                    self._class_stubs[node, depth] = text
                line = self._lines[node]
                items.append(_Item(text, line, abs(here - line)))
        return items


def _head_only(function: str, head: str, tokens: int, max_tokens: int, dropped: list[str]) -> Instruction:
    """The instruction with every context item dropped, or :class:`InstructionTooLong`."""
    if tokens > max_tokens:
        raise InstructionTooLong(
            f"the signature and docstring of `{function}` need {tokens} tokens; "
            f"the budget is {max_tokens}"
        )
    return Instruction(head, tokens, tuple(dropped))


def _find(module: cst.Module, path: list[str]) -> list[_Def]:
    """The chain of definitions from the module down to ``path``'s last name."""
    chain: list[_Def] = []
    body = module.body
    for name in path:
        match = next(
            (node for node in body if isinstance(node, _Def) and node.name.value == name), None
        )
        if match is None:
            found = ", ".join(n.name.value for n in body if isinstance(n, _Def)) or "nothing"
            raise LookupError(f"no definition `{'.'.join(path)}` (at this level: {found})")
        chain.append(match)
        body = match.body.body if isinstance(match.body, cst.IndentedBlock) else ()
    return chain


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text).strip()


def _head(module: cst.Module, func: cst.FunctionDef, classes: list[cst.ClassDef]) -> str:
    """The always-kept part: the HumanEvalPack-style sentence and the docstring."""
    signature = f"{func.name.value}({_one_line(module.code_for_node(func.params))})"
    if func.returns is not None:
        signature += f" -> {_one_line(module.code_for_node(func.returns.annotation))}"
    if func.asynchronous is not None:
        signature = "async " + signature
    if classes:
        owner = ".".join(c.name.value for c in classes)
        what = f"method `{signature}` of class `{owner}`"
    else:
        what = f"function `{signature}`"
    docstring = func.get_docstring(clean=True)
    if docstring:
        return f"Write a Python {what} to solve the following problem:\n{docstring}"
    return f"Write a Python {what}."


def _stub(module: cst.Module, node: _Def) -> str:
    """A definition's header with ``...`` as body, decorators kept, comments dropped."""
    decorators = [d.with_changes(leading_lines=()) for d in node.decorators]
    bare = node.with_changes(
        body=_STUB_BODY, decorators=decorators, leading_lines=(), lines_after_decorators=()
    )
    return module.code_for_node(bare).rstrip("\n")


_NEWLINE = re.compile(r"\r\n?|\n")
_RECORDED = (cst.FunctionDef, cst.ClassDef, cst.SimpleStatementLine)


class _StartRecorder(CodegenState):
    """Code generation that notes, per definition and simple statement, the tokens emitted before it.

    libcst calls ``record_syntactic_position`` where a node's syntactic start
    is (after its leading blank lines, comments and decorators): what
    ``PositionProvider`` reports as its start. Here that costs an append,
    where ``PositionProvider`` splits every token on newlines.
    """

    def __init__(self, module: cst.Module) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.starts: list[tuple[cst.CSTNode, int]] = []

    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        if isinstance(node, _RECORDED):
            self.starts.append((node, len(self.tokens)))
        return nullcontext()


def _start_lines(module: cst.Module) -> dict[cst.CSTNode, int]:
    """Each definition's and simple statement line's start line, as ``PositionProvider`` has it.

    Newlines are counted per token as ``PositionProvider`` does (``\\r\\n``,
    ``\\r`` and ``\\n`` each end a line); a node met twice keeps its last start.
    """
    state = _StartRecorder(module)
    module._codegen(state)
    tokens = state.tokens
    lines: dict[cst.CSTNode, int] = {}
    line = 1
    done = 0
    for node, index in state.starts:
        if index > done:
            chunk = "".join(tokens[done:index])
            if "\r" in chunk:  # "\r" + "\n" in two tokens are two line ends there
                line += sum(len(_NEWLINE.findall(token)) for token in tokens[done:index])
            else:
                line += chunk.count("\n")
            done = index
        lines[node] = line
    return lines


def _top_items(module: cst.Module, lines: dict[cst.CSTNode, int]) -> list[tuple[cst.CSTNode, str, int]]:
    """The top-level imports and definitions, in file order, with their stub text and line."""
    top = []
    for node in module.body:
        if isinstance(node, cst.SimpleStatementLine) and all(
            isinstance(s, cst.Import | cst.ImportFrom) for s in node.body
        ):
            text = module.code_for_node(node.with_changes(leading_lines=())).rstrip("\n")
        elif isinstance(node, _Def):
            text = _stub(module, node)
        else:
            continue
        top.append((node, text, lines[node]))
    return top


_OPEN = "\n\nContext from the same module:\n```python\n"
_CLOSE = "\n```"
#: UTF-8 size of what :func:`_render` puts around the items.
_FRAME_SIZE = len((_OPEN + _CLOSE).encode("utf-8"))


def _render(head: str, kept: list[_Item]) -> str:
    if not kept:
        return head
    stub = "\n".join(item.text for item in kept)
    return f"{head}{_OPEN}{stub}{_CLOSE}"
