"""The function the refinement loop repairs: where it is in its file, and how a new version goes back.

The model sees and edits the function alone, dedented, so that a method reads
like any function and every step can be checked with ``ast.parse`` on its
own; the tests need the whole file. :class:`FunctionTarget` is the bridge:
it cuts the file into the text before the function, the function and the
text after it, and :meth:`~FunctionTarget.splice` puts a new version back at
the same indentation, leaving every other byte of the file as it was.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from model_runtime.edits.code_map import is_empty_body
from model_runtime.errors import EditseqError

__all__ = ["FunctionTarget", "RefineError", "file_diff", "locate_function", "read_source"]

_NEWLINE = re.compile(r"\r\n|\r|\n")
_Def = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class RefineError(EditseqError, ValueError):
    """The loop cannot start: no such file or function, no tests, a test id that matches nothing."""


@dataclass(frozen=True, slots=True)
class FunctionTarget:
    """One function of one file, cut out of it.

    ``code`` is the function (decorators included) dedented by ``indent``,
    without a final newline; ``prefix + indent(code) + suffix`` is the file.
    ``empty`` means the body is only a docstring, ``pass`` or ``...``: there
    is nothing to repair, so it must be written.
    """

    path: str
    qualname: str
    source: str
    prefix: str
    code: str
    suffix: str
    indent: str
    newline: str
    empty: bool

    def splice(self, program: str) -> str:
        """The file with the function replaced by ``program`` (dedented code, as the model writes it)."""
        program = program.strip("\n")
        if program == self.code:
            return self.source
        lines = program.split("\n")
        indented = self.newline.join(self.indent + line if line.strip() else line for line in lines)
        return self.prefix + indented + self.suffix


def locate_function(source: str, qualname: str, path: str = "<file>") -> FunctionTarget:
    """Find ``qualname`` (``name``, ``Class.method``, ``Outer.Inner.method``) in ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise RefineError(f"{path} does not parse: {exc.msg} (line {exc.lineno})") from None
    node = _find(tree, qualname, path)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    spans, at = [], 0  # (start, end without the newline) of every line
    for match in _NEWLINE.finditer(source):
        spans.append((at, match.start()))
        at = match.end()
    spans.append((at, len(source)))
    begin, end = spans[first - 1][0], spans[node.end_lineno - 1][1]
    text = source[begin:end]
    indent = re.match(r"[ \t]*", text).group()
    return FunctionTarget(
        path=path, qualname=qualname, source=source, prefix=source[:begin], code=_dedent(text, indent),
        suffix=source[end:], indent=indent, newline="\r\n" if "\r\n" in text else "\n",
        empty=is_empty_body(node),
    )


def _find(tree: ast.Module, qualname: str, path: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    body, node = tree.body, None
    for name in qualname.split("."):
        node = next((n for n in body if isinstance(n, _Def) and n.name == name), None)
        if node is None:
            found = ", ".join(n.name for n in body if isinstance(n, _Def)) or "nothing"
            raise RefineError(f"no function `{qualname}` in {path} (at this level: {found})")
        body = node.body
    if isinstance(node, ast.ClassDef):
        raise RefineError(f"`{qualname}` in {path} is a class, not a function")
    return node


def _dedent(text: str, indent: str) -> str:
    """Remove exactly ``indent`` from every line that has it (blank lines lose their spaces)."""
    lines = _NEWLINE.split(text)
    return "\n".join(line[len(indent):] if line.startswith(indent) else line.strip() and line for line in lines)


def file_diff(old: str, new: str, path: str) -> str:
    """A unified diff of one file (``a/path`` to ``b/path``), empty when nothing changed."""
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), f"a/{path}", f"b/{path}", lineterm=""
    )
    return "\n".join(lines)


def read_source(workspace: Path, path: str) -> str:
    """The file's text, byte for byte (no newline translation), or :class:`RefineError`."""
    file = workspace / path
    if not file.is_file():
        raise RefineError(f"no such file in the workspace: {path}")
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RefineError(f"{path} is not UTF-8 text: {exc}") from None
