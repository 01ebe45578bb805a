"""Which functions a cursor is in: the map an editor needs to offer work on "this function".

The language server gets a position and must name a target the engine
understands (a qualname such as ``Class.method``) and know whether it is a
stub to write or code to repair. Only ``ast`` is needed; a file that does not
parse has no map (the editor is mid-edit, nothing to offer).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["FunctionSpan", "free_names", "function_spans", "functions_at", "is_empty_body", "spans_at"]


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
    try:
        tree = ast.parse(source)
    # SystemError: CPython 3.11 on odd input; MemoryError: its parser on '-' * 200000 + '1'.
    except (SyntaxError, ValueError, RecursionError, SystemError, MemoryError):
        return []
    spans: list[FunctionSpan] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                spans.append(FunctionSpan(
                    qualname=prefix + node.name, start_line=first - 1, end_line=node.end_lineno - 1,
                    def_line=node.lineno - 1, empty=is_empty_body(node),
                    documented=ast.get_docstring(node) is not None,
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

