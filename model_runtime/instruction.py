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
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

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
    return math.ceil(len(text.encode("utf-8")) / 3)


class InstructionTooLong(ValueError):
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
    function; parsing the file again for each would dominate the scan.
    """

    def __init__(self, source: str | cst.Module) -> None:
        module = cst.parse_module(source) if isinstance(source, str) else source
        wrapper = MetadataWrapper(module)
        self.module, self.positions = wrapper.module, wrapper.resolve(PositionProvider)

    def build(
        self,
        function: str,
        *,
        max_tokens: int,
        count_tokens: Callable[[str], int] = estimate_tokens,
    ) -> Instruction:
        """See :func:`build_instruction`."""
        module, positions = self.module, self.positions
        chain = _find(module, function.split("."))
        target = chain[-1]
        if not isinstance(target, cst.FunctionDef):
            raise LookupError(f"`{function}` is a class, not a function")
        here = positions[target].start.line
        head = _head(module, target, [c for c in chain[:-1] if isinstance(c, cst.ClassDef)])
        items = _context(module, positions, chain, here)

        kept = sorted(items, key=lambda item: item.line)
        dropped: list[str] = []
        for victim in sorted(items, key=lambda item: (item.distance, item.line), reverse=True):
            text = _render(head, kept)
            tokens = count_tokens(text)
            if tokens <= max_tokens:
                return Instruction(text, tokens, tuple(dropped))
            kept.remove(victim)
            dropped.append(victim.text)
        tokens = count_tokens(head)
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


def _context(module: cst.Module, positions, chain: list[_Def], here: int) -> list[_Item]:
    """Imports, enclosing class headers and other top-level signatures, with distances."""
    items = []
    for node in module.body:
        line = positions[node].start.line
        if isinstance(node, cst.SimpleStatementLine) and all(
            isinstance(s, cst.Import | cst.ImportFrom) for s in node.body
        ):
            text = module.code_for_node(node.with_changes(leading_lines=())).rstrip("\n")
        elif isinstance(node, _Def) and node is not chain[0]:
            text = _stub(module, node)
        else:
            continue
        items.append(_Item(text, line, abs(here - line)))
    for depth, node in enumerate(chain[:-1]):
        if isinstance(node, cst.ClassDef):
            line = positions[node].start.line
            indent = "    " * depth
            text = indent + _stub(module, node).replace("\n", "\n" + indent)
            items.append(_Item(text, line, abs(here - line)))
    return items


def _render(head: str, kept: list[_Item]) -> str:
    if not kept:
        return head
    stub = "\n".join(item.text for item in kept)
    return f"{head}\n\nContext from the same module:\n```python\n{stub}\n```"
