"""Which functions a cursor is in: the map an editor needs to offer work on "this function".

The language server gets a position and must name a target the engine
understands (a qualname such as ``Class.method``) and know whether it is a
stub to write or code to repair. Only ``ast`` is needed; a file that does not
parse has no map (the editor is mid-edit, nothing to offer).
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass

__all__ = ["CodeMap", "FunctionSpan", "code_map", "free_names", "function_spans", "functions_at", "is_empty_body",
           "source_lines", "spans_at", "updated"]


@dataclass(frozen=True, slots=True)
class FunctionSpan:
    """One function: 0-based first line (decorators included) and last line, inclusive."""

    qualname: str
    start_line: int
    end_line: int
    def_line: int
    empty: bool
    documented: bool

    @property
    def name(self) -> str:
        return self.qualname.rpartition(".")[2]


def function_spans(source: str) -> list[FunctionSpan]:
    """Every function and method of ``source``, outer before inner; ``[]`` if it does not parse."""
    return list(code_map(source).spans)


@dataclass(frozen=True, slots=True)
class CodeMap:
    """A document's functions and the top-level statements they came from (``blocks``: 0-based first
    and last lines, decorators included), so that an edit inside one statement re-parses only that
    statement (:func:`updated`). ``parsed`` is False when the document does not parse (no spans)."""

    spans: tuple[FunctionSpan, ...]
    blocks: tuple[tuple[int, int], ...]
    parsed: bool


def code_map(source: str, offset: int = 0) -> CodeMap:
    """The map of ``source`` (its lines numbered from ``offset``)."""
    tree = _parse(source)
    if tree is None:
        return CodeMap((), (), False)
    blocks = tuple((_first_line(node) - 1 + offset, node.end_lineno - 1 + offset) for node in tree.body)
    return CodeMap(tuple(_spans(tree, offset)), blocks, True)


def updated(old: CodeMap, source: str, first: int, last: int, added: int) -> CodeMap | None:
    """The map of ``source`` after an edit replaced lines ``first..last`` (0-based, inclusive) of the
    text ``old`` maps with ``last - first + 1 + added`` lines; ``None`` when only a whole parse can say.

    The edit must lie inside one top-level statement, below its first line (which decides where the
    statement starts and what decorates it), or inside the gap between two statements. That region,
    re-parsed alone, stands for itself in the whole document when it parses: it starts where a
    statement starts and ends where the next one begins, so the tokenizer's state on both sides is
    unchanged. A region that does not parse alone (``else:`` typed after an ``if``, a decorator
    above the next ``def``, a string left open) may still parse with its neighbours: ``None``.
    """
    if not old.parsed:
        return None
    blocks, starts = old.blocks, [b[0] for b in old.blocks]
    index = bisect.bisect_right(starts, first) - 1  # the last statement starting at or before ``first``
    if index >= 0 and blocks[index][0] < first and last <= blocks[index][1]:
        region = blocks[index]  # inside a statement, below its first line
        keep_before, keep_after = index, index + 1
    else:  # in the gap after statement ``index`` (or before the first one)
        low = blocks[index][1] + 1 if index >= 0 else 0
        high = blocks[index + 1][0] - 1 if index + 1 < len(blocks) else None
        if first < low or (high is not None and last > high):
            return None  # the edit reaches into a statement's first line or across statements
        region = (low, high)
        keep_before, keep_after = index + 1, index + 1
    lines = source_lines(source)
    start = region[0]
    end = (region[1] + added) if region[1] is not None else len(lines) - 1
    if end < start - 1 or end >= len(lines) and region[1] is not None:
        return None
    local = code_map("".join(lines[start:end + 1]), offset=start)
    if not local.parsed:
        return None
    low_line, high_line = region
    # In document order already: no span before the region reaches into it (it starts a top-level
    # statement or a gap), and none after it starts inside it.
    spans = old.spans
    split = bisect.bisect_left([s.start_line for s in spans], low_line)
    end = split if high_line is None else bisect.bisect_right([s.start_line for s in spans], high_line)
    after = spans[end:] if added == 0 or high_line is None else tuple(_shifted(s, added) for s in spans[end:])
    kept_after = blocks[keep_after:] if added == 0 else tuple((a + added, b + added) for a, b in blocks[keep_after:])
    spans = (*spans[:split], *local.spans, *(after if high_line is not None else ()))
    return CodeMap(spans, (*blocks[:keep_before], *local.blocks, *kept_after), True)


#: Where ``str.splitlines`` also splits and Python and LSP do not.
_OTHER_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def source_lines(text: str) -> list[str]:
    """``text``'s lines with their ends, split where Python and LSP split them (``\\n``, ``\\r\\n``,
    ``\\r``; not at a form feed as ``str.splitlines`` does)."""
    if not any(separator in text for separator in _OTHER_BREAKS):
        return text.splitlines(keepends=True)  # the same split, three times faster
    return _LINE.findall(text)


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    # SystemError: CPython 3.11 on odd input; MemoryError: its parser on '-' * 200000 + '1'.
    except (SyntaxError, ValueError, RecursionError, SystemError, MemoryError):
        return None


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


def _shifted(span: FunctionSpan, lines: int) -> FunctionSpan:
    return FunctionSpan(span.qualname, span.start_line + lines, span.end_line + lines, span.def_line + lines,
                        span.empty, span.documented)


def _spans(tree: ast.Module, offset: int) -> list[FunctionSpan]:
    spans: list[FunctionSpan] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                spans.append(FunctionSpan(
                    qualname=prefix + node.name, start_line=_first_line(node) - 1 + offset,
                    end_line=node.end_lineno - 1 + offset, def_line=node.lineno - 1 + offset,
                    empty=is_empty_body(node), documented=ast.get_docstring(node) is not None,
                ))
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return spans


def functions_at(source: str, first_line: int, last_line: int | None = None) -> list[FunctionSpan]:
    """The functions containing lines ``first_line..last_line`` (0-based), innermost last."""
    return spans_at(function_spans(source), first_line, last_line)


def spans_at(spans: list[FunctionSpan], first_line: int, last_line: int | None = None) -> list[FunctionSpan]:
    """:func:`functions_at` on spans already computed (a server caches them per document version)."""
    last = first_line if last_line is None else last_line
    return [s for s in spans if s.start_line <= first_line and last <= s.end_line]


def is_empty_body(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Only a docstring, ``pass`` or ``...``: a stub to write, not code to repair."""
    for statement in node.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and (
            statement.value.value is Ellipsis or isinstance(statement.value.value, str)
        ):
            continue
        return False
    return True


def free_names(node: ast.AST) -> set[str]:
    """The names ``node`` reads but does not bind itself: what it needs from the module around it.

    Scopes are merged: anything bound anywhere inside (a nested function's
    variable too) counts as bound, which errs towards "needs nothing more". A
    name declared ``global`` stays free even where it is assigned: it is
    module state. Used to decide which helpers a landed function needs, and
    whether a documented function is self-contained enough to be a problem.
    """
    loads, stores, declared = set(), set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (loads if isinstance(n.ctx, ast.Load) else stores).add(n.id)
        elif isinstance(n, ast.arg):
            stores.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not node:
            stores.add(n.name)
        elif isinstance(n, ast.alias):
            stores.add(n.asname or n.name.split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            stores.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            stores.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            stores.add(n.rest)
        elif isinstance(n, ast.Global):
            declared.update(n.names)
            loads.update(n.names)
    return loads - (stores - declared)

