"""The function the refinement loop repairs: where it is in its file, and how a new version goes back.

The model sees and edits the function alone, dedented, so that a method reads
like any function and every step can be checked with ``ast.parse`` on its
own; the tests need the whole file. :class:`FunctionTarget` is the bridge:
it cuts the file into the text before the function, the function and the
text after it, and :meth:`~FunctionTarget.splice` puts a new version back at
the same indentation, leaving every other byte of the file as it was.

Instruction-tuned models rarely answer with the function alone: imports, a
helper, a usage example, ``print`` calls, a ``__main__`` block or a test come
with it, and none of that belongs where the function was.
:meth:`~FunctionTarget.land` sorts an answer: the function replaces the old
one, new imports go to the file's import block, new top-level definitions the
function uses go right above it, and the rest is left out and named, so the
editor can say what was not applied (:attr:`Landing.note`).
"""

from __future__ import annotations

import ast
import difflib
import re
import textwrap
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from model_runtime.edits.code_map import free_names, is_empty_body
from model_runtime.errors import EditseqError

__all__ = ["FunctionTarget", "Landing", "RefineError", "file_diff", "locate_function", "read_source", "with_docstring"]

_NEWLINE = re.compile(r"\r\n|\r|\n")
_Def = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_Function = (ast.FunctionDef, ast.AsyncFunctionDef)
_Import = (ast.Import, ast.ImportFrom)
#: Top-level statements that can be a helper: they bind a name the function may use.
_Binding = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
#: What ``ast.parse`` raises on odd text besides SyntaxError (null bytes, deep nesting, huge
#: literals, CPython 3.11's SystemError on some input).
_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, SystemError, OverflowError)
#: Answers longer than this (UTF-8 bytes) land whole, unsorted: model answers are a few kB,
#: and sorting is linear but parsing a pathological megabyte is not worth an editor's wait.
LANDING_LIMIT = 200_000
_TOO_LONG = "the answer is too long to sort"
_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=]")


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
        return self.prefix + self._indented(program) + self.suffix

    def land(self, program: str) -> Landing:
        """Sort the model's answer ``program`` (dedented) and put the function back into the file.

        Stateless: always relative to this target's original file. An answer
        that is the function alone (or does not parse) lands exactly as
        :meth:`splice` puts it; otherwise the function (the last top-level def
        of its name that differs from the current code) replaces the old one,
        new imports join the file's import block, new definitions the function
        uses land above it, and everything else is dropped (see :class:`Landing`).
        Never raises on model output.
        """
        name = self.qualname.rpartition(".")[2]
        size = len(program.encode("utf-8", "replace"))
        if size > LANDING_LIMIT:
            return Landing(program, self.splice(program), dropped=(f"{_TOO_LONG} ({size} bytes)",),
                           function=name, program=program)
        text = _NEWLINE.sub("\n", program)
        first = re.search(r"^[ \t]*\S", text, re.M)
        if first is not None and first.group()[0] in " \t":  # dedent only what is indented: dedent
            text = textwrap.dedent(text)                     # also empties whitespace lines in strings
        try:
            body = ast.parse(text).body
        except _PARSE_ERRORS:
            body = None
        if not body or (
            len(body) == 1 and isinstance(body[0], _Function) and body[0].name == name
        ):
            return Landing(program, self.splice(program), function=name, program=program)
        return _Answer(self, name, text, body).land()

    def _indented(self, code: str) -> str:
        """``code`` (``\\n`` lines) at the function's indentation, in the file's newline style."""
        return self.newline.join(self.indent + line if line.strip() else line for line in code.split("\n"))

    @property
    def _function_text(self) -> str:
        """The function's text as it is in the file, byte for byte."""
        return self.source[len(self.prefix) : len(self.source) - len(self.suffix)]


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a model's answer went: what landed in the file and what was left out.

    ``code`` is the function's new code, dedented, without what was sorted
    out (``self.code`` when the answer held no version of it); ``text`` is
    the whole file after landing. ``imports`` are the import statements added
    to the file's import block, ``helpers`` the names of new top-level
    definitions kept (above the function) because it uses them, ``dropped``
    short descriptions of what was left out. ``program`` is what landed as
    one dedented program (new imports, helpers, the function): landing it
    again gives the same ``text``, so a loop that keeps ``program`` rather
    than ``code`` keeps the imports and helpers in later rounds, whose
    answers land from the original file again.
    """

    code: str
    text: str
    imports: tuple[str, ...] = ()
    helpers: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    #: The function's name (the last part of the qualname) when the answer held a version of
    #: it, for :attr:`note`; ``""`` when it did not (``code`` is then the current code).
    function: str = ""
    program: str = ""

    @property
    def note(self) -> str:
        """``""`` when nothing was added or dropped; else one short sentence, e.g.
        "only `add` landed: dropped print(...), def test_add; added import math"."""
        return self.note_since(None)

    def note_since(self, earlier: Landing | None) -> str:
        """:attr:`note` about what is new since ``earlier`` (the previous step's landing).

        Every step lands from the original file, so a step repeats the imports
        and helpers of the steps before it and drops what they dropped; an
        editor that shows one note per step wants only the news.
        """
        dropped = [d for d in self.dropped if earlier is None or d not in earlier.dropped]
        imports = [i for i in self.imports if earlier is None or i not in earlier.imports]
        helpers = [h for h in self.helpers if earlier is None or h not in earlier.helpers]
        if dropped and dropped[0].startswith(_TOO_LONG):
            return f"{dropped[0]}: it landed as it is"
        parts = []
        if dropped:
            parts.append("dropped " + _listed(dropped))
        if imports:
            parts.append("added " + _listed([" ".join(i.split()) for i in imports]))
        if helpers:
            parts.append(("kept helpers " if len(helpers) > 1 else "kept helper ") + _listed(helpers))
        if not parts:
            return ""
        if not self.function:  # the answer held no new version of the function
            return "; ".join(parts)
        return f"{'only ' if dropped else ''}`{self.function}` landed: {'; '.join(parts)}"


def locate_function(source: str, qualname: str, path: str = "<file>") -> FunctionTarget:
    """Find ``qualname`` (``name``, ``Class.method``, ``Outer.Inner.method``) in ``source``."""
    try:
        tree = ast.parse(source.removeprefix("\ufeff"))  # a BOM stays in the file, outside the function
    except SyntaxError as exc:
        raise RefineError(f"{path} does not parse: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError, SystemError) as exc:  # NUL bytes, absurd nesting
        raise RefineError(f"{path} cannot be parsed: {type(exc).__name__}") from None
    node = _find(tree, qualname, path)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    spans, at = [], 0  # (start, end without the newline) of every line
    for match in _NEWLINE.finditer(source):
        spans.append((at, match.start()))
        at = match.end()
    spans.append((at, len(source)))
    begin, end = spans[first - 1][0], spans[node.end_lineno - 1][1]
    if begin == 0 and source.startswith("\ufeff"):
        begin = 1
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


# -- landing an answer --------------------------------------------------------------


class _Answer:
    """One parsed answer being sorted against one target (see :meth:`FunctionTarget.land`)."""

    def __init__(self, target: FunctionTarget, name: str, text: str, body: list[ast.stmt]) -> None:
        self.target, self.name, self.text, self.body = target, name, text, body
        self.lines = text.split("\n")
        self.fates: dict[int, str | None] = {}  # id(statement) -> why it was dropped; None: it landed

    def land(self) -> Landing:
        target = self.target
        node, code = self._function()
        needed = free_names(node) if node is not None else _free_names_of(target.code)
        imports = self._imports()
        helpers = self._helpers(needed)
        for statement in self.body:
            if id(statement) not in self.fates:
                self.fates[id(statement)] = _describe(statement)
        dropped = _counted([self.fates[id(s)] for s in self.body if self.fates[id(s)] is not None])
        helper_texts = [self._source(s) for s in helpers]
        names = tuple(n for s in helpers for n in _bound_by(s))
        program = "\n\n\n".join(filter(None, ["\n".join(imports), *helper_texts, code]))
        return Landing(
            code=code, text=self._text(code, imports, helper_texts), imports=tuple(imports), helpers=names,
            dropped=dropped, function=self.name if node is not None else "", program=program,
        )

    # -- sorting -------------------------------------------------------------------------

    def _function(self) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef | None, str]:
        """The def that lands and its code; ``(None, target.code)`` when the answer has none.

        Of several defs of the name, the last that changes the code: models
        often repeat the original before their fix. A method answered inside
        its class is taken out of it.
        """
        target, name = self.target, self.name
        versions = [(n, self._def_source(n)) for n in self.body if isinstance(n, _Function) and n.name == name]
        owner = None
        if not versions and "." in target.qualname:
            owner_name = target.qualname.split(".")[-2]
            owner = next((n for n in reversed(self.body) if isinstance(n, ast.ClassDef) and n.name == owner_name),
                         None)
            if owner is not None:
                for method in owner.body:
                    if isinstance(method, _Function) and method.name == name:
                        text = self._def_source(method)
                        versions.append((method, _dedent(text, re.match(r"[ \t]*", text).group())))
        if not versions:
            return None, target.code
        node, code = next((v for v in reversed(versions) if v[1] != target.code), versions[-1])
        if owner is not None:
            rest = [s for s in owner.body if s is not node and not _is_docstring(s)]
            self.fates[id(owner)] = f"the rest of class {owner.name}" if rest else None
        else:
            for other, _ in versions:
                self.fates[id(other)] = None if other is node else f"def {name} (another version)"
        return node, code

    def _imports(self) -> list[str]:
        """The answer's imports the file lacks, as written; ``__future__`` ones are dropped."""
        have, added = set(), []
        for statement in self.body:
            if not isinstance(statement, _Import):
                continue
            keys, known = _import_keys(statement), self._file.import_keys
            if all(key in known or key in have for key in keys):
                self.fates[id(statement)] = None  # the file has it already: nothing to say
            elif isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
                self.fates[id(statement)] = _short(_unparse(statement)) + " (it must come first in the file)"
            else:
                self.fates[id(statement)] = None
                have |= keys
                added.append(self._segment(statement))
        return added

    def _helpers(self, needed: set[str]) -> list[ast.stmt]:
        """The new top-level definitions the function uses, directly or through each other, in order."""
        latest: dict[str, ast.stmt] = {}
        for statement in self.body:
            if isinstance(statement, _Binding) and id(statement) not in self.fates:
                for bound in _bound_by(statement):
                    latest[bound] = statement
        if not latest:
            return []
        file_names = self._file.names
        kept: set[int] = set()
        queue, seen = sorted(needed - {self.name}), set()
        while queue:
            wanted = queue.pop()
            if wanted in seen:
                continue
            seen.add(wanted)
            statement = latest.get(wanted)
            if statement is None or id(statement) in kept or wanted in file_names:
                continue
            uses = free_names(statement)
            if not isinstance(statement, _Function) and self.name in uses:
                continue  # runs at import, above the function: it would fail (a usage example)
            kept.add(id(statement))
            queue.extend(sorted(uses - seen))
        helpers = []
        for statement in self.body:
            if id(statement) in kept:
                self.fates[id(statement)] = None
                helpers.append(statement)
            elif isinstance(statement, _Binding) and id(statement) not in self.fates:
                if any(bound in file_names for bound in _bound_by(statement)):
                    self.fates[id(statement)] = _describe(statement) + " (the file already has one)"
        return helpers

    # -- the file ------------------------------------------------------------------------

    @cached_property
    def _file(self) -> _FileLayout:
        return _FileLayout(self.target)

    def _text(self, code: str, imports: list[str], helpers: list[str]) -> str:
        """The original file with ``imports`` in its import block and ``helpers`` + ``code`` for the function."""
        target, nl = self.target, self.target.newline
        if code == target.code and not imports and not helpers:
            return target.source
        function = target._function_text if code == target.code else target._indented(code)
        inserts: list[tuple[int, str]] = []
        if imports:
            at, before, after = self._file.import_point()
            inserts.append((at, before + nl.join("\n".join(imports).split("\n")) + nl + after))
        if helpers:
            layout = self._file
            if layout.enclosing_class:  # a bare name in a method is a module global, never a class attribute
                at = layout.statement_start
                gap = "\n" * (2 + layout.extra_blank_line(at))
                inserts.append((at, nl.join(gap.join(helpers).split("\n")) + nl * len(gap)))
            else:
                gap = "\n" * (2 + layout.extra_blank_line(len(target.prefix)))
                function = target._indented(gap.join(helpers)) + nl * len(gap) + function
        prefix, done = [], 0
        for at, piece in sorted(inserts, key=lambda insert: insert[0]):
            prefix += [target.prefix[done:at], piece]
            done = at
        return "".join(prefix) + target.prefix[done:] + function + target.suffix

    # -- source text ---------------------------------------------------------------------

    def _def_source(self, node: ast.stmt) -> str:
        """A def's exact lines: decorators, and comments in its body and right after it (indented
        deeper than the def, so a comment that opens the next statement stays with that one)."""
        first = _first_line(node)
        end, lines = node.end_lineno, self.lines
        margin = len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())
        for at in range(end, len(lines)):
            stripped = lines[at].lstrip()
            if stripped[:1] == "#" and len(lines[at]) - len(stripped) > margin:
                end = at + 1
            elif stripped:
                break
        return "\n".join(lines[first - 1 : end])

    def _source(self, node: ast.stmt) -> str:
        return self._def_source(node) if isinstance(node, _Def) else self._segment(node)

    def _segment(self, node: ast.stmt) -> str:
        """A statement's exact text (``ast.get_source_segment`` re-splits the text on every call)."""
        first, last = node.lineno - 1, node.end_lineno - 1
        if first == last:
            return _cut(self.lines[first], node.col_offset, node.end_col_offset)
        return "\n".join([_cut(self.lines[first], node.col_offset, None), *self.lines[first + 1 : last],
                          _cut(self.lines[last], 0, node.end_col_offset)])


class _FileLayout:
    """What landing needs to know about the target's file: its names, imports and where things go."""

    def __init__(self, target: FunctionTarget) -> None:
        self.target = target
        self.line = len(_NEWLINE.findall(target.prefix)) + 1  # the function's first line, 1-based
        try:
            self.body = ast.parse(target.source).body
        except _PARSE_ERRORS:  # locate_function parsed it; only a hand-made target gets here
            self.body = []

    @cached_property
    def spans(self) -> list[tuple[int, int]]:
        """(start, end without the newline) of every line of the file."""
        spans, at = [], 0
        for match in _NEWLINE.finditer(self.target.source):
            spans.append((at, match.start()))
            at = match.end()
        spans.append((at, len(self.target.source)))
        return spans

    @cached_property
    def names(self) -> set[str]:
        return _module_names(self.body)

    @cached_property
    def import_keys(self) -> set[tuple]:
        return {key for s in self.body if isinstance(s, _Import) for key in _import_keys(s)}

    @cached_property
    def _outer(self) -> ast.stmt:
        """The top-level statement that holds the function (only asked when a class does)."""
        return next(s for s in self.body if _first_line(s) <= self.line <= s.end_lineno)

    @cached_property
    def enclosing_class(self) -> bool:
        """Is the function inside a class (a method, or a function in a method)?"""
        body, path = self.body, []
        for name in self.target.qualname.split("."):
            node = next((n for n in body if isinstance(n, _Def) and n.name == name), None)
            if node is None:
                return False
            path.append(node)
            body = node.body
        return any(isinstance(node, ast.ClassDef) for node in path[:-1])

    @property
    def statement_start(self) -> int:
        return self.spans[_first_line(self._outer) - 1][0]

    def _blank(self, index: int) -> bool:
        start, end = self.spans[index]
        return not self.target.source[start:end].strip()

    def extra_blank_line(self, offset: int) -> int:
        """1 if the line starting at ``offset`` has two blank lines above it, else 0: helpers are
        set apart from each other and from the function as the file sets the function apart."""
        index = next(i for i, span in enumerate(self.spans) if span[0] == offset)
        return int(index >= 2 and self._blank(index - 1) and self._blank(index - 2))

    def import_point(self) -> tuple[int, str, str]:
        """Where new imports go, and the newlines (blank lines) to put before and after them.

        After the last top-level import above the function; with none, after the
        module docstring and ``__future__`` imports; with none of those either, at
        the top (below a shebang or coding line).
        """
        nl, body, line = self.target.newline, self.body, self.line
        above = [s for s in body if s.end_lineno < line]
        regular = [s for s in above if isinstance(s, _Import) and not _is_future(s)]
        if regular:
            return self._line_after(regular[-1].end_lineno), "", ""
        head, index = 0, 0
        if above and _is_docstring(above[0]):
            head, index = above[0].end_lineno, 1
        while index < len(above) and _is_future(above[index]):
            head, index = above[index].end_lineno, index + 1
        if not head:
            source = self.target.source
            while head < min(2, line - 1):
                start, end = self.spans[head]
                text = source[start:end]
                if not ((head == 0 and text.startswith("#!")) or _CODING.match(text)):
                    break
                head += 1
            at = self._line_after(head) if head else 0
            return at, "", nl if not self._blank(head) else ""
        return self._line_after(head), nl, nl if not self._blank(head) else ""

    def _line_after(self, line: int) -> int:
        """The offset where the line after 1-based ``line`` starts."""
        return self.spans[line][0] if line < len(self.spans) else len(self.target.source)


# -- statements --------------------------------------------------------------------------


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_future(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def _import_keys(node: ast.Import | ast.ImportFrom) -> set[tuple]:
    """One key per name an import binds: ``import a, b`` is there when ``import a`` and ``import b`` are."""
    if isinstance(node, ast.Import):
        return {("import", a.name, a.asname) for a in node.names}
    return {("from", node.level, node.module, a.name, a.asname) for a in node.names}


def _bound_by(node: ast.stmt) -> list[str]:
    """The names a top-level definition binds."""
    if isinstance(node, _Def):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _module_names(body: list[ast.stmt]) -> set[str]:
    """Every name bound at module level, in compound statements too (``try: import x``)."""
    names: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, _Def):
            names.add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _free_names_of(code: str) -> set[str]:
    try:
        return free_names(ast.parse(code))
    except _PARSE_ERRORS:
        return set()


def _describe(node: ast.stmt) -> str:
    """A few words for a statement left out: ``print(...)``, ``def test_add``, ``x = ...``."""
    if isinstance(node, ast.FunctionDef):
        return f"def {node.name}"
    if isinstance(node, ast.AsyncFunctionDef):
        return f"async def {node.name}"
    if isinstance(node, ast.ClassDef):
        return f"class {node.name}"
    if isinstance(node, ast.Assign):
        return _short(" = ".join(_unparse(t) for t in node.targets) + " = ...")
    if isinstance(node, ast.AnnAssign):
        return _short(f"{_unparse(node.target)} = ...")
    if isinstance(node, ast.Expr):
        value, awaited = node.value, ""
        if isinstance(value, ast.Await):
            value, awaited = value.value, "await "
        if isinstance(value, ast.Call):
            return _short(f"{awaited}{_unparse(value.func)}(...)")
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return '"..."'
        return _short(awaited + _unparse(value))
    if isinstance(node, ast.If):
        return _short(f"if {_unparse(node.test)}: ...")
    if isinstance(node, ast.Assert):
        return "assert ..."
    text = _unparse(node)
    head = text.split("\n", 1)[0]
    return _short(head + (" ..." if head != text else ""))


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except (RecursionError, ValueError, TypeError, AttributeError, MemoryError):
        return type(node).__name__.lower()


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _counted(descriptions: list[str]) -> tuple[str, ...]:
    """Each description once, in order, with ``×n`` when it came ``n`` times (three ``print(...)``)."""
    counts: dict[str, int] = {}
    for description in descriptions:
        counts[description] = counts.get(description, 0) + 1
    return tuple(d if n == 1 else f"{d} ×{n}" for d, n in counts.items())


def _listed(items: list[str], most: int = 6) -> str:
    """``a, b, c``; past ``most`` items, the rest as a count, so a note stays one short line."""
    return ", ".join(items[:most] + ([f"{len(items) - most} more"] if len(items) > most else []))


def _cut(line: str, start: int, end: int | None) -> str:
    """``line[start:end]`` where the offsets are UTF-8 bytes, as ``ast`` counts columns."""
    if line.isascii():
        return line[start:end]
    return line.encode("utf-8")[start:end].decode("utf-8", "replace")


def with_docstring(original: str, program: str, qualname: str) -> str:
    """``program`` with the original function's docstring, if the model's def lacks one.

    LintSeq models write a function without its docstring (their training cut
    it into the instruction), so their answers would delete the user's
    documentation; writing and rewriting put it back.
    """
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
