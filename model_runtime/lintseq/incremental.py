"""Incremental pyflakes for LintSeq: the same answers as a full lint, at the cost of the change.

The backward sampler lints the whole program after every deletion. With the
:class:`~model_runtime.lintseq.linters.PyflakesLinter` that is a parse, a
pyflakes run and a compile of the whole text each time, so a path costs
(probes x program size). :class:`IncrementalPyflakes` answers every probe with
**exactly** the lines the full linter reports, redoing only what a deletion
can have changed:

* **Parsing, per top-level statement.** The program is cut into *chunks*, one
  per top-level statement; a class, and a function of 150 lines or more, is
  cut further into its header and one piece per body statement (parsed under
  a dummy ``class _:`` / ``def _():`` line). Only pieces that lost lines are
  parsed again. When every piece parses on its own, the whole file parses to
  their concatenation: each starts at its block's indentation in a fresh
  tokenizer state and ends with a complete statement. When one fails, the
  whole file's error is found by parsing a *window* of pieces that ends with
  one that parses on its own (a guard): it is accepted if it lies before the
  guard and either CPython's tokenizer raised it (final whatever follows) or
  the text before the guard ends in a fresh tokenizer state (so CPython's scan
  of the rest of the file cannot replace it); otherwise the window grows, up
  to the end of the file. A window that parses means the deletions re-attached
  code across pieces (a docstring's closing quotes went and strings pair up
  differently, an ``else`` joined an earlier ``if``, a decorator the next
  ``def``): those pieces are cut again along their new statements.
* **pyflakes' module pass, per top-level statement.** pyflakes checks
  module-level code in order and defers every function body to the end. Each
  top-level statement (a *unit*) is checked by the real pyflakes checker with
  copies of the bindings made before it, restricted to the names it mentions
  (and three flags: ``import *``, ``__future__`` placement, postponed
  annotations); what it binds is recorded. After a deletion, units are
  checked again in order only from the first changed one, and only as long as
  the bindings they see differ from the previous probe's. Their deferred code
  (lambdas, postponed annotations) is checked against the final bindings.
* **Function bodies, per function.** Each function body (module-level
  function or method) is checked on its own by the real checker, in a module
  whose scopes hold copies of the final bindings of the names it mentions;
  its result is kept until its text or one of those bindings changes. A
  function of 150 lines or more is checked statement by statement the same
  way as the module pass, its function scope in place of the module's, plus,
  per module-level name, where the body last read it (a later local
  assignment to it is an ``UndefinedLocal``).
* ``global``/``nonlocal`` in functions are handled as pyflakes handles them:
  every ``UndefinedName`` for such a name disappears; a function whose result
  would depend on when pyflakes adds the name to the module scope is linted in
  full.
* **Compile, per top-level statement or class member** (only when pyflakes
  finds nothing; a cut function is compiled whole, its checks span
  statements), with the module's ``__future__`` flags, whose placement is
  checked over the chunks.

Anything outside these rules (``global`` at module or class level, an
assignment expression in a lambda or annotation outside functions, a
``__future__`` import not at the top, doctest mode, an internal error) makes
that probe fall back to the full linter, so the answer is always the full
linter's. The tests compare both on every probe of many programs.
"""

from __future__ import annotations

import __future__ as _future_module
import ast
import copy
import io
import os
import re
import tokenize
import unicodedata
from bisect import bisect_left
from collections import OrderedDict

from .linters import PYFLAKES_ERRORS, PyflakesLinter, syntax_error_line

__all__ = ["IncrementalPyflakes"]

_FILENAME = "<lintseq>"
_UNDEFINED_NAME = PYFLAKES_ERRORS["UndefinedName"]
_IDENT = re.compile(r"[^\W\d]\w*")
_CONTINUATION = re.compile(r"(?:else|elif|except|finally)\b")
#: Errors CPython's tokenizer raises from the text up to the error alone. Raised while
#: parsing, they end it: no later text can replace them (unlike a parser error, which the
#: tokenizer's check of the rest of the file overrides). Errors found by reaching the end
#: of the text (an unclosed bracket or triple-quoted string) are not among them.
_TOKENIZER_ERROR = re.compile(
    r"unterminated string literal|unmatched '|closing parenthesis|too many nested parentheses"
    r"|unindent does not match|inconsistent use of tabs|too many levels of indentation"
    r"|invalid character|invalid non-printable character|unexpected character after line continuation"
    r"|invalid (?:decimal|hexadecimal|octal|binary) literal|invalid digit|leading zeros in decimal")
_FUNC_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)
#: Functions at least this long (lines) are checked statement by statement (:class:`_Body`).
_CUT_FUNCTIONS_FROM = 150
#: Nodes (Python 3.12+) whose expressions pyflakes checks at the end, like annotations.
_DEFERRED_NODES = frozenset({"TypeAlias", "TypeVar", "ParamSpec", "TypeVarTuple"})
#: Fields whose strings are never looked up as names by pyflakes.
_NOT_NAMES = frozenset({"attr", "kind", "type_comment", "module"})


class _Fallback(Exception):
    """This probe is outside the incremental rules: lint the whole program."""


def _is_trivia(line: str) -> bool:
    stripped = line.lstrip()
    return not stripped or stripped.startswith("#")


def _parse(text: str) -> tuple[ast.Module | None, SyntaxError | None]:
    try:
        return ast.parse(text), None
    except SyntaxError as exc:
        return None, exc
    except (ValueError, RecursionError, MemoryError):  # the full linter reports E902 at line 1
        raise _Fallback from None


# -- one parsed piece of the program ----------------------------------------------------


class _Parse:
    """A leaf's text, parsed: its statements and how its line numbers map back."""

    __slots__ = ("alive", "header", "lines", "tree", "exc", "stmts", "classdef", "analysis", "compiled", "fresh",
                 "step")

    def __init__(self, alive, header, lines, tree, exc, stmts, classdef=None):
        self.alive = alive  # original indices of the leaf's lines, in order
        self.header = header  # dummy lines before the first real one
        self.lines = lines  # the leaf's line texts (without dummy lines)
        self.tree = tree
        self.exc = exc
        self.stmts = stmts  # statements the leaf contributes (None if it does not parse)
        self.classdef = classdef  # the class or function node of a head (its body a dummy ``pass``)
        self.analysis = None
        self.compiled = {}
        self.fresh = None  # whether the text ends in a fresh tokenizer state (computed on demand)
        self.step: _Step | None = None  # a cut function's statement: its part of the function's check

    def orig(self, lineno: int) -> int:
        return self.alive[lineno - self.header - 1]


#: Dummy first line and node type of the pieces of a cut class or function.
_BLOCKS = {
    "class": ("class _:\n", ast.ClassDef),
    "def": ("def _():\n", ast.FunctionDef),
    "async": ("async def _():\n", ast.AsyncFunctionDef),
}


class _Leaf:
    """A contiguous range of original lines that is parsed on its own."""

    __slots__ = ("lo", "hi", "kind", "indent", "parse", "stale", "block")

    def __init__(self, lo: int, hi: int, kind: str, indent: str = "", block: str = "class") -> None:
        self.lo, self.hi, self.kind, self.indent = lo, hi, kind, indent
        self.block = block  # for heads and members: what they were cut from (see _BLOCKS)
        self.parse: _Parse | None = None
        self.stale = True

    def refresh(self, lines: list[str], alive: bytearray) -> _Parse:
        if not self.stale and self.parse is not None:
            return self.parse
        self.stale = False
        idx = [i for i in range(self.lo, self.hi) if alive[i]]
        texts = [lines[i] for i in idx]
        kind = self.kind
        if kind == "top":
            tree, exc = _parse("\n".join(texts))
            self.parse = _Parse(idx, 0, texts, tree, exc, tree.body if tree else None)
        elif kind == "member":
            dummy, node_type = _BLOCKS[self.block]
            if all(_is_trivia(t) for t in texts):
                self.parse = _Parse(idx, 1, texts, None, None, [])
            else:
                tree, exc = _parse(dummy + "\n".join(texts))
                stmts = None
                if tree is not None and len(tree.body) == 1 and type(tree.body[0]) is node_type:
                    body = tree.body[0].body
                    first = texts[body[0].lineno - 2]
                    if first[: len(first) - len(first.lstrip())] == self.indent:
                        stmts = body
                self.parse = _Parse(idx, 1, texts, tree, exc, stmts)
        else:  # head of a class or function: the header lines, parsed with a dummy body
            tree, exc = _parse("\n".join(texts) + "\n" + self.indent + "pass")
            stmts = classdef = None
            if tree is not None and len(tree.body) == 1 and type(tree.body[0]) is _BLOCKS[self.block][1]:
                body = tree.body[0].body
                if len(body) == 1 and isinstance(body[0], ast.Pass) and body[0].lineno == len(texts) + 1:
                    classdef = tree.body[0]
                    stmts = [classdef]
            self.parse = _Parse(idx, 0, texts, tree, exc, stmts, classdef)
        return self.parse


class _Chunk:
    """One top-level statement (or statements sharing lines), maybe split into class members.

    A chunk is also a *unit* of pyflakes' module pass. When
    deletions make code attach across chunks, several chunks form one
    :class:`_Merged` unit instead.
    """

    __slots__ = ("index", "lo", "hi", "whole", "head", "members", "mode", "ok", "dirty", "leaves", "error", "mp",
                 "funcs_now", "content_now", "block", "body", "compiled_key", "compiled_ok", "stale_members",
                 "failing_members", "empty_members", "changed_members", "members_version")

    def __init__(self, index: int, lo: int, hi: int) -> None:
        self.index, self.lo, self.hi = index, lo, hi
        self.whole = _Leaf(lo, hi, "top")
        self.head: _Leaf | None = None
        self.members: list[_Leaf] = []
        self.mode = "whole"
        self.ok = True
        self.dirty = True
        self.leaves: list[_Leaf] = []  # leaves whose statements make the chunk now
        #: A failing class's syntax error found among its members (exact if no other chunk fails).
        self.error: list[int] | None = None
        self.mp: _ModulePass | None = None  # its part of pyflakes' module pass
        self.funcs_now: list = []  # its deferred functions now
        self.content_now = None  # its module-level code now (the skeleton keys of its leaves)
        self.block = ""  # "class", "def" or "async" when cut into a head and members
        self.body: _Body | None = None  # a cut function's body, checked statement by statement
        self.compiled_key = None  # a cut function's last compile: what, and whether it compiled
        self.compiled_ok = True
        # members: which lost lines, which do not parse, which are empty, which were parsed
        # again since the function's replay; the version counts cuts (None: refresh them all)
        self.stale_members: set[int] = set()
        self.failing_members: set[int] = set()
        self.empty_members: set[int] = set()
        self.changed_members: set[int] = set()
        self.members_version: int | None = None


class _Merged:
    """Consecutive chunks that only parse together (a unit of one leaf)."""

    __slots__ = ("index", "lo", "hi", "leaves", "mode", "mp", "funcs_now", "content_now")

    def __init__(self, leaf: _Leaf) -> None:
        self.index = 0
        self.lo, self.hi = leaf.lo, leaf.hi
        self.leaves = [leaf]
        self.mode = "whole"
        self.mp: _ModulePass | None = None
        self.funcs_now: list = []
        self.content_now = None


# -- what a parsed leaf means to pyflakes --------------------------------------------------


class _Func:
    """A function whose body pyflakes defers: a module-level function or a method."""

    __slots__ = ("parse", "node", "start", "end", "chain", "conditional", "facts", "key", "result",
                 "_orig", "_text")

    def __init__(self, parse: _Parse, node, chain, conditional: bool) -> None:
        self.parse = parse
        self.node = node
        self.start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        self.end = node.end_lineno
        self.chain = chain  # local class ordinals of the enclosing classes, outermost first
        self.conditional = conditional
        self.facts = None
        self.key = None
        self.result = None
        self._orig = None
        self._text = None

    @property
    def text(self) -> str:
        if self._text is None:
            h = self.parse.header
            self._text = "\n".join(self.parse.lines[self.start - h - 1 : self.end - h])
        return self._text

    @property
    def orig(self) -> list[int]:
        if self._orig is None:
            h = self.parse.header
            self._orig = self.parse.alive[self.start - h - 1 : self.end - h]
        return self._orig


class _Analysis:
    __slots__ = ("skel", "funcs", "skel_key", "unsafe", "nclasses", "classes", "unit", "offset", "names",
                 "deferred_names")

    def __init__(self) -> None:
        self.unit = 0  # index of the unit the leaf belongs to now
        self.offset = 0  # chunk-wide ordinal of the leaf's first class
        self.names: frozenset | None = None  # names its module-level code may look up or bind
        self.deferred_names: frozenset | None = None  # those in code pyflakes checks at the end
        self.skel: list[ast.stmt] = []
        self.funcs: list[_Func] = []
        #: Original indices of the leaf's module-level lines, its *skeleton* (None where a
        #: function body was left out): equal keys mean equal module-level code.
        self.skel_key: tuple = ()
        self.unsafe: str | None = None
        self.nclasses = 0
        self.classes: list[ast.ClassDef] = []  # skeleton copies, by local ordinal


def _stub(node):
    body0 = node.body[0]
    stub = copy.copy(node)
    stub.body = [ast.Pass(lineno=body0.lineno, col_offset=body0.col_offset,
                          end_lineno=body0.lineno, end_col_offset=body0.col_offset)]
    return stub


def _header_last_line(node) -> int:
    last = node.lineno
    a = node.args
    for part in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg, *a.defaults,
                 *[d for d in a.kw_defaults if d is not None], node.returns,
                 *getattr(node, "type_params", ())):
        if part is not None and getattr(part, "end_lineno", None):
            last = max(last, part.end_lineno)
    return last


def _deferred_hazards(nodes) -> str | None:
    """Why module-pass code would change a scope at deferred time, if it does."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return "global or nonlocal outside functions"
        if isinstance(node, ast.Lambda) or isinstance(node, ast.arg) and node.annotation is not None:
            if any(isinstance(n, ast.NamedExpr) for n in ast.walk(node)):
                return "assignment expression in a lambda or annotation"
        if isinstance(node, ast.AnnAssign) and any(isinstance(n, ast.NamedExpr) for n in ast.walk(node.annotation)):
            return "assignment expression in an annotation"
        if type(node).__name__ in _DEFERRED_NODES and any(isinstance(n, ast.NamedExpr) for n in ast.walk(node)):
            return "assignment expression in a type parameter or alias"
        if isinstance(node, _FUNC_TYPES):
            if node.returns is not None and any(isinstance(n, ast.NamedExpr) for n in ast.walk(node.returns)):
                return "assignment expression in an annotation"
            stack.extend(node.decorator_list)
            stack.append(node.args)
            stack.extend(getattr(node, "type_params", ()))
            continue  # the body is the function's own business
        stack.extend(ast.iter_child_nodes(node))
    return None


def _analyze(parse: _Parse, stmts: list[ast.stmt], outer_chain: tuple) -> _Analysis:
    """Stub the deferred function bodies of ``stmts`` and describe the rest."""
    an = _Analysis()
    excluded: list[tuple[int, int]] = []
    unsafe = _deferred_hazards(stmts)

    def block(body, chain, conditional):
        out = []
        for st in body:
            if isinstance(st, _FUNC_TYPES):
                an.funcs.append(_Func(parse, st, chain, conditional))
                first = st.body[0].lineno
                if first > _header_last_line(st):
                    excluded.append((first, st.end_lineno))
                out.append(_stub(st))
            elif isinstance(st, ast.ClassDef):
                ordinal = an.nclasses
                an.nclasses += 1
                c = copy.copy(st)
                an.classes.append(c)
                c.body = block(st.body, chain + (ordinal,), conditional)
                out.append(c)
            elif isinstance(st, (ast.If, ast.While)):
                c = copy.copy(st)
                c.body = block(st.body, chain, True)
                c.orelse = block(st.orelse, chain, True)
                out.append(c)
            elif isinstance(st, (ast.For, ast.AsyncFor)):
                c = copy.copy(st)
                c.body = block(st.body, chain, conditional)
                c.orelse = block(st.orelse, chain, conditional)
                out.append(c)
            elif isinstance(st, (ast.With, ast.AsyncWith)):
                c = copy.copy(st)
                c.body = block(st.body, chain, conditional)
                out.append(c)
            elif isinstance(st, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                c = copy.copy(st)
                c.body = block(st.body, chain, conditional)
                c.orelse = block(st.orelse, chain, conditional)
                c.finalbody = block(st.finalbody, chain, conditional)
                handlers = []
                for h in st.handlers:
                    h2 = copy.copy(h)
                    h2.body = block(h.body, chain, conditional)
                    handlers.append(h2)
                c.handlers = handlers
                out.append(c)
            elif isinstance(st, ast.Match):
                c = copy.copy(st)
                cases = []
                for case in st.cases:
                    case2 = copy.copy(case)
                    case2.body = block(case.body, chain, conditional)
                    cases.append(case2)
                c.cases = cases
                out.append(c)
            else:
                out.append(st)
        return out

    an.skel = block(stmts, outer_chain, False)
    an.unsafe = unsafe
    # the skeleton key: the leaf's lines minus the function bodies (None marks each body)
    h = parse.header
    nlines = len(parse.lines)
    keep = [True] * (nlines + 1)
    gaps = set()
    for first, last in excluded:
        gaps.add(first - h)
        for ln in range(first - h, min(last - h, nlines) + 1):
            keep[ln] = False
    key = []
    for ln in range(1, nlines + 1):
        if keep[ln]:
            key.append(parse.alive[ln - 1])
        elif ln in gaps:
            key.append(None)
    an.skel_key = tuple(key)
    return an


def _function_facts(node) -> tuple[tuple[str, ...], frozenset, frozenset]:
    """Names pyflakes may look up in the function, its global/nonlocal names, names it deletes."""
    names: set[str] = set()
    declared: set[str] = set()
    deleted: set[str] = set()
    docstrings: set[int] = set()
    for n in ast.walk(node):
        t = type(n)
        if t is ast.Name:
            names.add(n.id)
            if type(n.ctx) is ast.Del:
                deleted.add(n.id)
            continue
        if t is ast.Constant:
            if isinstance(n.value, str) and id(n) not in docstrings:
                for ident in _IDENT.findall(n.value):
                    names.add(ident)
                    if not ident.isascii():
                        names.add(unicodedata.normalize("NFKC", ident))
            continue
        if t is ast.Expr:
            if type(n.value) is ast.Constant:
                docstrings.add(id(n.value))
            continue
        if t is ast.Global or t is ast.Nonlocal:
            declared.update(n.names)
        for field in n._fields:
            if field in _NOT_NAMES:
                continue
            value = getattr(n, field, None)
            if type(value) is str:
                names.add(value)
                if "." in value:
                    names.update(value.split("."))
            elif type(value) is list and value and type(value[0]) is str:
                names.update(value)
    return tuple(sorted(names)), frozenset(declared), frozenset(deleted)


class _ModulePass:
    """One unit's part of pyflakes' module pass, run with the bindings made before it.

    Phase 1 is the unit's module-level code; phase 2, run against the final
    module bindings, the code pyflakes defers (lambdas, postponed annotations).
    """

    __slots__ = ("content", "names", "deferred_names", "input_sig", "checker", "delta", "flags_after",
                 "messages1", "messages2", "phase2_sig", "class_scopes", "class_sigs")

    def __init__(self) -> None:
        self.content = None  # the unit's skeleton key
        self.names: frozenset = frozenset()
        self.deferred_names: frozenset = frozenset()
        self.input_sig = None
        self.checker = None
        self.delta: dict = {}  # name -> binding, or _DELETED
        self.flags_after = None
        self.messages1: list = []
        self.messages2: list | None = None
        self.phase2_sig = None
        self.class_scopes: dict = {}
        self.class_sigs: dict = {}


class _Body:
    """A long top-level function, checked statement by statement (:meth:`IncrementalPyflakes._replay`).

    pyflakes checks a function body in order, in the function's scope: a
    statement's result depends on the bindings of the names it mentions at
    that point, and on which module-level names the function has already read
    (a later local assignment to such a name is an ``UndefinedLocal``). Nested
    functions and lambdas run at the end, against the body's final bindings.
    It stands in the function index where a :class:`_Func` would.
    """

    __slots__ = ("chunk", "facts", "key", "result", "chain", "version", "head", "hist", "initial", "fsig",
                 "module_changed", "applied", "names_at", "users", "deferred_users", "sources", "size")

    def __init__(self, chunk) -> None:
        self.chunk = chunk
        self.facts = None
        self.key = None
        self.result = None
        self.chain = ()
        self.version = None  # the members (their cut) the state below is about
        self.size = 0  # how many members
        self.names_at: list = []  # per member, the names its step was indexed under
        self.users: dict = {}  # name -> sorted member indices whose statement mentions it
        self.deferred_users: dict = {}  # name -> member indices whose nested functions mention it
        self.sources: set = set()  # error sources (body, member index) it has recorded
        self.head = None  # the header's parse
        self.hist: dict = {}  # name or ("M", name) -> ([member index], [value])
        self.initial: dict = {}  # the function scope after the arguments
        self.fsig: dict = {}  # signatures of the final function-scope bindings
        self.module_changed: set = set()  # module names whose final binding changed since the replay
        self.applied: list = []  # per statement, the delta now in ``hist``


class _Step:
    """One statement (member) of a cut function: its result for its incoming bindings."""

    __slots__ = ("names", "deferred_names", "deleted", "input_sig", "checker", "delta", "messages1", "messages2",
                 "phase2_sig")

    def __init__(self) -> None:
        self.names: frozenset = frozenset()  # names the statement may look up or bind
        self.deferred_names: frozenset = frozenset()  # those in its nested functions and lambdas
        self.deleted: frozenset = frozenset()
        self.input_sig = None  # None: never run
        self.checker = None
        self.delta: dict = {}
        self.messages1: list = []
        self.messages2: list | None = None
        self.phase2_sig = None


_DELETED = object()  # a delta entry: the unit deleted the name
_INITIAL = object()  # no unit binds the name: a builtin or nothing
_INITIAL_FLAGS = (False, True, False)  # import *, __future__ still allowed, postponed annotations


def _names_in(nodes) -> set[str]:
    """Every string pyflakes could look up or bind as a name in ``nodes`` (generously)."""
    names: set[str] = set()
    docstrings: set[int] = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        t = type(n)
        if t is ast.Name:
            names.add(n.id)
            continue
        if t is ast.Constant:
            if isinstance(n.value, str) and id(n) not in docstrings:
                for ident in _IDENT.findall(n.value):
                    names.add(ident)
                    if not ident.isascii():
                        names.add(unicodedata.normalize("NFKC", ident))
            continue
        if t is ast.Expr and type(n.value) is ast.Constant:
            docstrings.add(id(n.value))
        for field in n._fields:
            value = getattr(n, field, None)
            if value is None:
                continue
            if type(value) is str:
                if field not in _NOT_NAMES:
                    names.add(value)
                    if "." in value:
                        names.update(value.split("."))
            elif type(value) is list:
                for item in value:
                    if type(item) is str:
                        names.add(item)
                    elif isinstance(item, ast.AST):
                        stack.append(item)
            elif isinstance(value, ast.AST):
                stack.append(value)
    return names


def _nested_deferred(nodes) -> list:
    """The parts of function-body code that pyflakes checks only at the end of the function."""
    parts = []
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Lambda, *_FUNC_TYPES)) or type(n).__name__ in _DEFERRED_NODES:
            parts.append(n)
            continue
        if isinstance(n, ast.AnnAssign):
            parts.append(n.annotation)
        stack.extend(ast.iter_child_nodes(n))
    return parts


def _deferred_parts(nodes) -> list:
    """The sub-trees of module-pass code that pyflakes may check only at the end."""
    parts = []
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Lambda) or type(n).__name__ in _DEFERRED_NODES:
            parts.append(n)
            continue
        if isinstance(n, ast.arg) and n.annotation is not None:
            parts.append(n.annotation)
        elif isinstance(n, ast.AnnAssign):
            parts.append(n.annotation)
        elif isinstance(n, _FUNC_TYPES) and n.returns is not None:
            parts.append(n.returns)
        stack.extend(ast.iter_child_nodes(n))
    return parts


# -- pyflakes checkers -----------------------------------------------------------------------

_checkers = None


def _checker_classes():
    """The pyflakes checker subclasses, built on first use (pyflakes is imported lazily)."""
    global _checkers
    if _checkers is not None:
        return _checkers
    from pyflakes import checker as pf

    class _Base(pf.Checker):
        # pyflakes fills every module scope with ~160 fresh Builtin bindings; the engine
        # installs shared ones itself (their only state, ``used``, is checked by identity
        # of the scope that used them, so sharing them changes nothing).
        builtIns = property(lambda self: frozenset(), lambda self, value: None)

        def __init__(self, tree):
            super().__init__(tree, _FILENAME, withDoctest=False)

        def addBinding(self, node, value):
            # Builtins go straight in: that is all addBinding does for them.
            if node is None and type(value) is pf.Builtin:
                self.scope[value.name] = value
                return
            super().addBinding(node, value)

        def _last_class_scope(self):
            for scope in reversed(self.deadScopes):
                if type(scope) is pf.ClassScope:
                    return scope
            raise _Fallback  # pragma: no cover

    class UnitChecker(_Base):
        """One unit's module-pass code, after the bindings made before it (phase 1).

        A :class:`LintseqMark` statement before each leaf's statements says which
        leaf follows (for the messages' lines); the first one installs the
        bindings. It subclasses ``ImportFrom`` so that pyflakes' check of
        ``__future__`` placement does not count it as code. The deferred code is
        kept for :meth:`phase2`, which runs it against the final bindings.
        """

        def __init__(self, tree, install, cid_of):
            self.install = install
            self.cid_of = cid_of
            self.leaf = None
            self.class_scopes = {}
            self.module_scope = None
            self.deferring = True
            super().__init__(tree)

        def LINTSEQMARK(self, node):
            if self.install is not None:
                self.install(self)
                self.install = None
            self.leaf = node.leaf

        def deferFunction(self, callable):
            leaf = self.leaf

            def run():
                previous, self.leaf = self.leaf, leaf
                try:
                    callable()
                finally:
                    self.leaf = previous

            super().deferFunction(run)

        def report(self, messageClass, *args, **kwargs):
            super().report(messageClass, *args, **kwargs)
            self.messages[-1].lintseq_leaf = self.leaf

        def addBinding(self, node, value):
            if type(value) is pf.ExportBinding:
                value.lintseq_leaf = self.leaf
            super().addBinding(node, value)

        def CLASSDEF(self, node):
            super().CLASSDEF(node)
            cid = self.cid_of.get(id(node))
            if cid is not None:
                self.class_scopes[cid] = self._last_class_scope()

        def _run_deferred(self):
            if self.deferring:
                self.module_scope = self.scopeStack[0]
                return
            super()._run_deferred()

        def phase2(self, install):
            """Run the deferred code after ``install(module_scope)``; return the new messages."""
            install(self.module_scope)
            start = len(self.messages)
            self.deferring = False
            self.scopeStack = [self.module_scope]
            super()._run_deferred()
            self.deferring = True
            return self.messages[start:]

    class FunctionChecker(_Base):
        """One function, in dummy classes, with the real scopes installed before its body runs."""

        def __init__(self, tree, target, install):
            self.target = target
            self.install = install
            self.owner = None
            self.dummy_scopes = {}
            super().__init__(tree)

        def FUNCTIONDEF(self, node):
            if node is not self.target:
                return super().FUNCTIONDEF(node)
            previous, self.owner = self.owner, node
            try:
                return super().FUNCTIONDEF(node)
            finally:
                self.owner = previous

        ASYNCFUNCTIONDEF = FUNCTIONDEF

        def CLASSDEF(self, node):
            super().CLASSDEF(node)
            self.dummy_scopes[id(node)] = self._last_class_scope()

        def deferFunction(self, callable):
            owner = self.owner

            def run():
                previous, self.owner = self.owner, owner
                try:
                    callable()
                finally:
                    self.owner = previous

            super().deferFunction(run)

        def report(self, messageClass, *args, **kwargs):
            if self.owner is not None:
                super().report(messageClass, *args, **kwargs)

        def _run_deferred(self):
            self.install(self)
            super()._run_deferred()

    class BodyChecker(FunctionChecker):
        """Some statements of a function's body, after the function-scope bindings before them.

        ``install_scope`` runs once the arguments are bound; only the body's own
        messages are kept. The body's nested deferred code is kept for
        :meth:`phase2`, against the body's final bindings.
        """

        def __init__(self, tree, target, install_module, install_scope):
            self.install_scope = install_scope
            self.f_scope = None
            self.initial = None
            self.in_body = False
            self.module_scope = None
            super().__init__(tree, target, install_module)

        def ARGUMENTS(self, node):
            super().ARGUMENTS(node)
            if self.f_scope is None and node is self.target.args:
                self.f_scope = self.scope
                self.initial = dict(self.scope)
                self.install_scope(self)
                self.in_body = True

        def report(self, messageClass, *args, **kwargs):
            if self.in_body:
                super().report(messageClass, *args, **kwargs)

        def _run_deferred(self):
            self.install(self)
            self.module_scope = self.scopeStack[0]
            orig = (self.scopeStack, self.offset)
            self._running_deferred = True
            while self._deferred and self.f_scope is None:  # up to the function's own body
                handler, scope, offset = self._deferred.popleft()
                self.scopeStack, self.offset = scope, offset
                handler()
            self.scopeStack, self.offset = orig

        def phase2(self, install):
            """Run the nested deferred code after ``install(function_scope)``; return new messages."""
            install(self.f_scope)
            start = len(self.messages)
            pf.Checker._run_deferred(self)
            return self.messages[start:]

    class LintseqMark(ast.ImportFrom):
        """Inert statement telling the unit checker which leaf follows."""

        def __init__(self, leaf):
            super().__init__(module=None, names=[], level=0, lineno=1, col_offset=0)
            self.leaf = leaf

    _checkers = (UnitChecker, FunctionChecker, pf, LintseqMark, BodyChecker)
    return _checkers


def _builtin_bindings() -> dict:
    """The Builtin bindings pyflakes starts every module scope with."""
    pf = _checker_classes()[2]
    checker = pf.Checker(ast.Module(body=[], type_ignores=[]), _FILENAME, withDoctest=False)
    for scope in checker.deadScopes:
        if type(scope) is pf.ModuleScope:
            return dict(scope)
    return {}  # pragma: no cover


def _binding_sig(binding, pf):
    """What about a binding can change a function's pyflakes errors."""
    if binding is None:
        return None
    t = type(binding)
    if t is pf.Builtin:
        return "builtin"
    if isinstance(binding, pf.Importation):
        return (t.__name__, binding.name, binding.fullName, getattr(binding, "module", None),
                getattr(binding, "real_name", None), getattr(binding, "is_lazy", None))
    if t is pf.ExportBinding:
        return (t.__name__, tuple(binding.names))
    return t.__name__


def _strip_header(node):
    """The function without what pyflakes handles at definition time (done by the module pass)."""
    f = copy.copy(node)
    f.decorator_list = []
    f.returns = None
    a = copy.copy(node.args)

    def bare(arg):
        if arg is None:
            return None
        b = copy.copy(arg)
        b.annotation = None
        return b

    a.posonlyargs = [bare(x) for x in a.posonlyargs]
    a.args = [bare(x) for x in a.args]
    a.kwonlyargs = [bare(x) for x in a.kwonlyargs]
    a.vararg = bare(a.vararg)
    a.kwarg = bare(a.kwarg)
    a.defaults = []
    a.kw_defaults = [None] * len(a.kwonlyargs)
    f.args = a
    return f


# -- the engine --------------------------------------------------------------------------------


def _first_line(st) -> int:
    return min([st.lineno] + [d.lineno for d in getattr(st, "decorator_list", ())])


class IncrementalPyflakes:
    """Lints a program that loses lines, answering exactly as :class:`PyflakesLinter` would.

    ``remove(indices)`` deletes original lines; ``lint()`` returns the original
    indices of the lines the full linter reports for what is left (mapped as
    the sampler maps them: a line past the end is the last line). ``check=True``
    also runs the full linter on every probe and raises ``AssertionError`` on
    any difference (tests); ``strict=True`` raises internal errors instead of
    falling back to the full linter.

    The work of a probe is proportional to what the deletions touched: the
    chunks that lost lines are parsed again, their functions checked again, and
    the module pass redone from them on only as far as the bindings they make
    differ from before.
    """

    def __init__(self, lines: list[str], linter: PyflakesLinter | None = None, *,
                 check: bool = False, strict: bool = False) -> None:
        self.lines = lines
        self.n = len(lines)
        self.alive = bytearray(b"\x01") * self.n
        self.linter = linter or PyflakesLinter()
        self.check = check
        self.strict = strict
        self.doctest = "PYFLAKES_DOCTEST" in os.environ
        #: Probes answered, probes answered by the full linter and why, work done.
        self.probes = self.fallbacks = self.unit_runs = self.function_runs = self.rechunks = 0
        self.fallback_reasons: dict[str, int] = {}
        self._chunk_of: list[_Chunk] = [None] * self.n  # type: ignore[list-item]
        self._chunks: list[_Chunk] = []
        self._dirty: set[_Chunk] = set()  # chunks that lost lines since they were parsed
        self._pending: set[_Chunk] = set()  # chunks parsed again since the pyflakes part ran
        self._members_versions = 0
        self._failing: set[_Chunk] = set()  # chunks that do not parse on their own
        self._merged: dict[tuple[int, int], _Leaf] = {}
        self._units: list = []
        self._version = 0  # bumped whenever the list of units changes
        self._units_version = -1
        self._func_cache: OrderedDict = OrderedDict()
        self._facts_cache: OrderedDict = OrderedDict()
        self._compile_cache: OrderedDict = OrderedDict()
        # functions: every current one, by the names it mentions, and those needing a check
        self._funcs: set[_Func] = set()
        self._by_name: dict[str, set[_Func]] = {}
        self._declared: dict[str, int] = {}  # names in global/nonlocal statements, with counts
        self._deleted: dict[str, int] = {}  # names functions delete, with counts
        self._need: set[_Func] = set()
        self._bodies: set[_Body] = set()  # the cut (long) functions among them
        self._injected: frozenset = frozenset()
        # errors by source (a unit or a function); only sources with errors are kept
        self._errors: dict[object, frozenset] = {}
        self._raw: dict[object, list] = {}
        self._filter: frozenset = frozenset()  # the declared names the errors were filtered with
        # the module pass: per name, the units that bind it, in order, and what they bind
        self._hist: dict[str, tuple[list[int], list]] = {}
        self._fsig: dict[str, object] = {}
        self._final_flags = _INITIAL_FLAGS
        self._deferred_users: dict[str, set] = {}  # name -> units whose deferred code mentions it
        self._builtins = _builtin_bindings()
        # compiling: leaves not yet compiled, leaves that do not compile, units with __future__
        self._uncompiled: set[_Leaf] = set()
        self._bad_compile: set[_Leaf] = set()
        self._future_units: set = set()
        self._flags = 0
        tree = ast.parse("\n".join(lines))
        self._chunks = self._make_chunks(tree.body, 0, self.n, lambda lineno: lineno - 1)
        self._index_chunks()
        self._dirty.update(self._chunks)

    # -- structure ------------------------------------------------------------------------

    def _make_chunks(self, body, lo: int, hi: int, to_orig) -> list[_Chunk]:
        """Chunks for original lines [lo, hi) whose top-level statements are ``body``."""
        groups: list[list[ast.stmt]] = []
        starts: list[int] = []
        last_end = -1
        for st in body:
            first = to_orig(_first_line(st))
            if groups and first <= last_end:
                groups[-1].append(st)
            else:
                groups.append([st])
                starts.append(first)
            last_end = max(last_end, to_orig(st.end_lineno))
        if not starts:
            starts, groups = [lo], [[]]
        starts[0] = lo
        bounds = starts + [hi]
        chunks = []
        for k, stmts in enumerate(groups):
            chunk = _Chunk(0, bounds[k], bounds[k + 1])
            for i in range(chunk.lo, chunk.hi):
                self._chunk_of[i] = chunk
            if len(stmts) == 1 and isinstance(stmts[0], (ast.ClassDef, *_FUNC_TYPES)):
                self._split_block(chunk, stmts[0], to_orig)
            chunks.append(chunk)
        return chunks

    def _index_chunks(self) -> None:
        for k, chunk in enumerate(self._chunks):
            chunk.index = k

    def _split_block(self, chunk: _Chunk, cls, to_orig) -> None:
        """Cut a class, or a long function, into its header and one leaf per body statement.

        A function is cut only when long (a short one is cheaper to check whole) and
        free of ``global``/``nonlocal`` (whose effects cross statements in ways the
        statement-by-statement check does not follow).
        """
        if isinstance(cls, ast.ClassDef):
            block = "class"
            header = (*cls.bases, *cls.keywords, *getattr(cls, "type_params", ()))
            header_end = to_orig(max([cls.lineno] + [b.end_lineno for b in header]))
        else:
            if to_orig(cls.end_lineno) - to_orig(cls.lineno) < _CUT_FUNCTIONS_FROM:
                return
            if any(isinstance(n, (ast.Global, ast.Nonlocal)) for st in cls.body for n in ast.walk(st)):
                return
            block = "async" if isinstance(cls, ast.AsyncFunctionDef) else "def"
            header_end = to_orig(_header_last_line(cls))
        member_starts: list[int] = []
        last_end = -1
        for st in cls.body:
            first = to_orig(_first_line(st))
            if first <= header_end:
                return
            if not member_starts or first > last_end:
                member_starts.append(first)
            last_end = max(last_end, to_orig(st.end_lineno))
        line = self.lines[member_starts[0]]
        indent = line[: len(line) - len(line.lstrip())]
        if not indent or any(not self.lines[s].startswith(indent) or self.lines[s][len(indent)] in " \t\f"
                             for s in member_starts):
            return
        chunk.block = block
        chunk.head = _Leaf(chunk.lo, member_starts[0], "head", indent, block)
        bounds = member_starts + [chunk.hi]
        chunk.members = [_Leaf(bounds[i], bounds[i + 1], "member", indent, block)
                         for i in range(len(member_starts))]

    def _rechunk(self, first: int, last: int, p: _Parse) -> None:
        """Cut chunks first..last again along the top-level statements of their joint parse.

        Chunks that keep their exact line range are kept, parses and all.
        """
        old = {(c.lo, c.hi): c for c in self._chunks[first:last + 1]}
        lo, hi = self._chunks[first].lo, self._chunks[last].hi
        new = self._make_chunks(p.stmts, lo, hi, lambda lineno: p.alive[lineno - 1])
        for k, chunk in enumerate(new):
            kept = old.pop((chunk.lo, chunk.hi), None)
            if kept is not None and (kept.head is None) == (chunk.head is None) and kept.block == chunk.block:
                new[k] = kept
                for i in range(kept.lo, kept.hi):
                    self._chunk_of[i] = kept
            else:
                self._dirty.add(chunk)
                if kept is not None:
                    old[(kept.lo, kept.hi)] = kept
        for gone in old.values():
            self._dirty.discard(gone)
            self._failing.discard(gone)
        self._chunks[first:last + 1] = new
        self._index_chunks()
        self._version += 1
        self.rechunks += 1

    def remove(self, indices) -> None:
        """Delete original lines (lines already deleted are ignored)."""
        alive = self.alive
        for i in indices:
            if not alive[i]:
                continue
            alive[i] = 0
            chunk = self._chunk_of[i]
            self._dirty.add(chunk)
            chunk.dirty = True
            chunk.whole.stale = True
            if chunk.head is not None:
                if i < chunk.head.hi:
                    chunk.head.stale = True
                else:
                    members = chunk.members
                    lo, hi = 0, len(members)
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if members[mid].hi <= i:
                            lo = mid + 1
                        else:
                            hi = mid
                    members[lo].stale = True
                    chunk.stale_members.add(lo)
            for (lo, hi), leaf in self._merged.items():
                if lo <= i < hi:
                    leaf.stale = True

    # -- linting --------------------------------------------------------------------------

    def lint(self) -> list[int]:
        """Original indices of the lines the full linter flags now (empty: clean)."""
        self.probes += 1
        try:
            if self.doctest:
                raise _Fallback("doctest mode")
            result = self._lint()
        except _Fallback as exc:
            reason = str(exc) or "fallback"
            if self.strict and reason.startswith("internal"):
                raise
            self._count_fallback(reason)
            result = self._full()
        except Exception as exc:  # noqa: BLE001 - an optimisation must never change an answer
            if self.strict:
                raise
            self._count_fallback(f"internal: {type(exc).__name__}")
            result = self._full()
        if self.check:
            expected = self._full()
            assert result == expected, (result, expected)
        return result

    def _count_fallback(self, reason: str) -> None:
        self.fallbacks += 1
        self.fallback_reasons[reason] = self.fallback_reasons.get(reason, 0) + 1
        if not reason.startswith(("compile error", "result depends", "global name", "function deletes")):
            self._version += 1  # the bookkeeping may be half updated: redo it all next time

    def _full(self) -> list[int]:
        kept = [i for i in range(self.n) if self.alive[i]]
        if not kept:
            return []
        errors = self.linter.lint("\n".join(self.lines[i] for i in kept))
        return sorted({kept[min(max(e.line, 1), len(kept)) - 1] for e in errors})

    def _lint(self) -> list[int]:
        refreshed = self._pending  # refreshed chunks not yet seen by the pyflakes part
        merged = None
        for attempt in (0, 1):
            for chunk in sorted(self._dirty, key=lambda c: c.index):
                self._refresh_chunk(chunk)
                refreshed.add(chunk)
                if chunk.ok:
                    self._failing.discard(chunk)
                else:
                    self._failing.add(chunk)
            self._dirty.clear()
            if not self._failing:
                break
            failing = sorted(self._failing, key=lambda c: c.index)
            if len(failing) == 1 and failing[0].error is not None:
                return failing[0].error
            found = self._syntax_error(failing)
            if isinstance(found, list):
                return found
            first, last, leaf = found
            if attempt == 0:
                # Deletions re-attached code across chunks (e.g. a docstring's closing
                # quotes went and strings now pair up differently): cut the region
                # again along its real statements and start over.
                self._rechunk(first, last, leaf.parse)
                continue
            merged = (first, last, leaf)
        if merged is None:
            if self._merged:
                self._merged = {}
                self._version += 1
            units = self._chunks
        else:
            first, last, leaf = merged
            unit = _Merged(leaf)
            units = [*self._chunks[:first], unit, *self._chunks[last + 1:]]
            self._merged = {(leaf.lo, leaf.hi): leaf}
            self._version += 1
        full = self._units_version != self._version
        if full:
            for k, unit in enumerate(units):
                if isinstance(unit, _Merged):
                    unit.index = k
            self._units = units
            self._units_version = self._version
            dirty_units = units
        else:
            dirty_units = sorted(refreshed, key=lambda c: c.index)
        self._update_functions(dirty_units, full)
        self._pending = set()
        errors = self._pyflakes()
        if errors:
            return errors
        self._compile(full)
        return []

    # -- parsing --------------------------------------------------------------------------

    def _refresh_chunk(self, chunk: _Chunk) -> None:
        lines, alive = self.lines, self.alive
        chunk.dirty = False
        chunk.error = None
        if chunk.head is not None and chunk.head.refresh(lines, alive).stmts is not None:
            self._refresh_members(chunk)
            if chunk.failing_members:
                found = self._member_window(chunk, sorted(chunk.failing_members))
                if found is True:  # members were cut again: parse the new ones
                    self._refresh_members(chunk)
                    found = (self._member_window(chunk, sorted(chunk.failing_members))
                             if chunk.failing_members else None)
                if isinstance(found, list):
                    chunk.error = found
                    chunk.mode = "whole"
                    chunk.ok = False
                    chunk.leaves = [chunk.whole]
                    return
            if not chunk.failing_members and len(chunk.empty_members) < len(chunk.members):
                if chunk.block != "class":
                    chunk.leaves = [chunk.head]  # a cut function's members are read from chunk.members
                elif chunk.mode != "split" or chunk.changed_members:
                    chunk.leaves = [chunk.head] + [m for k, m in enumerate(chunk.members)
                                                   if k not in chunk.empty_members]
                    chunk.changed_members = set()
                chunk.mode = "split"
                chunk.ok = True
                return
        whole = chunk.whole.refresh(lines, alive)
        chunk.mode = "whole"
        chunk.ok = whole.stmts is not None
        chunk.leaves = [chunk.whole]

    def _refresh_members(self, chunk: _Chunk) -> None:
        """Parse the members that lost lines again (all of them after a cut)."""
        lines, alive = self.lines, self.alive
        members = chunk.members
        if chunk.members_version is None:
            chunk.members_version = self._next_members_version()
            todo = range(len(members))
            chunk.failing_members = set()
            chunk.empty_members = set()
            chunk.changed_members = set(todo)
        else:
            todo = chunk.stale_members
        for k in todo:
            leaf = members[k]
            old = leaf.parse
            p = leaf.refresh(lines, alive)
            if p is not old:
                chunk.changed_members.add(k)
            if p.stmts is None:
                chunk.failing_members.add(k)
            else:
                chunk.failing_members.discard(k)
            if p.stmts:
                chunk.empty_members.discard(k)
            else:
                chunk.empty_members.add(k)
        chunk.stale_members = set()

    def _next_members_version(self) -> int:
        self._members_versions += 1
        return self._members_versions

    def _member_window(self, chunk: _Chunk, failing: list[int]):
        """:meth:`_syntax_error` among a split class's members (the class header parses).

        Returns the error's lines, or True after cutting members that parse
        together into new members, or None when the class must be parsed whole.
        """
        members = chunk.members
        indent = chunk.head.indent
        first, last = failing[0], failing[-1]
        start = self._code_start(members[first])
        if start is None:
            return None
        line = self.lines[start]
        if line[: len(line) - len(line.lstrip())] != indent or _CONTINUATION.match(line.lstrip()):
            k = first - 1
            while k >= 0 and self._code_start(members[k]) is None:
                k -= 1
            if k < 0:
                return None
            first = k
        guards = 1
        while True:
            g, seen = last + 1, 0
            while g < len(members):
                if self._code_start(members[g]) is not None:
                    seen += 1
                    if seen == guards:
                        break
                g += 1
            if g >= len(members):
                return None
            window = _Leaf(members[first].lo, members[g].hi, "member", indent, chunk.block)
            p = window.refresh(self.lines, self.alive)
            if p.stmts is not None:
                starts = []
                last_end = -1
                for st in p.stmts:
                    s0 = p.orig(_first_line(st))
                    if not starts or s0 > last_end:
                        starts.append(s0)
                    last_end = max(last_end, p.orig(st.end_lineno))
                starts[0] = members[first].lo
                bounds = starts + [members[g].hi]
                members[first:g + 1] = [_Leaf(bounds[i], bounds[i + 1], "member", indent, chunk.block)
                                        for i in range(len(starts))]
                chunk.members_version = None  # member indices moved: refresh and replay them all
                self.rechunks += 1
                return True
            if p.exc is None:  # parsed, but not as one class body at the right indentation
                return None
            raw = p.exc.lineno
            reported = syntax_error_line(p.exc)
            if raw is None:
                return None
            guard_line = p.alive.index(self._code_start(members[g])) + 2
            if raw <= guard_line and 2 <= reported <= guard_line:
                if _TOKENIZER_ERROR.match(p.exc.msg) or all(self._member_fresh(m) for m in members[first:g]):
                    return [p.orig(reported)]
            guards *= 2

    def _member_fresh(self, leaf: _Leaf) -> bool:
        p = leaf.parse
        if p.stmts is not None:
            return True
        if p.fresh is None:
            p.fresh = _end_state("\n".join(p.lines))
        return p.fresh == "fresh"

    def _code_start(self, chunk: _Chunk) -> int | None:
        """Original index of the chunk's first code line (None: only comments and blank lines)."""
        lines, alive = self.lines, self.alive
        for i in range(chunk.lo, chunk.hi):
            if alive[i] and not _is_trivia(lines[i]):
                return i
        return None

    def _end_state(self, chunk: _Chunk) -> str:
        """:func:`_end_state` of the chunk's text (``fresh`` for a chunk that parses)."""
        if chunk.ok:
            return "fresh"
        p = chunk.whole.refresh(self.lines, self.alive)
        if p.fresh is None:
            # CPython reports a triple-quoted string left open at the end even after a parser
            # error (its check of the rest of the file); only then is tokenizing needed.
            if p.exc is not None and p.exc.msg.startswith("unterminated triple-quoted"):
                p.fresh = "string"
            else:
                p.fresh = _end_state("\n".join(p.lines))
        return p.fresh

    def _syntax_error(self, failing: list[_Chunk]):
        """The whole file's syntax error, or a window of chunks that parses as one unit.

        Chunks before the window parse on their own, so the tokenizer and the
        parser reach the window's first line in their initial state (unless that
        line is indented or continues a statement: then the window starts one
        chunk earlier). The window ends with a *guard*, a chunk that parses on
        its own. An error is accepted when it lies before the guard's first line
        and the text before the guard ends in a fresh tokenizer state: then
        nothing after the window can move it (not even the tokenizer's check of
        the rest of the file that CPython runs after a parser error). Otherwise
        the window grows; at the end of the file every error is exact.
        """
        chunks = self._chunks
        first, last = failing[0].index, failing[-1].index
        start = self._code_start(failing[0])
        if start is None:  # pragma: no cover - comments and blank lines always parse
            raise _Fallback("internal: failing chunk of comments")
        line = self.lines[start]
        if line[:1] in (" ", "\t", "\f") or _CONTINUATION.match(line):
            k = first - 1
            while k > 0 and self._code_start(chunks[k]) is None:
                k -= 1
            first = max(k, 0)
        # A chunk that ends inside a triple-quoted string makes later strings pair up
        # differently: the error then depends on the rest of the file, so parse to its end.
        guards = len(chunks) if any(self._end_state(c) == "string" for c in failing) else 1
        while True:
            g, seen = last + 1, 0
            while g < len(chunks):
                if self._code_start(chunks[g]) is not None:
                    seen += 1
                    if seen == guards:
                        break
                g += 1
            at_end = g >= len(chunks)
            end = len(chunks) - 1 if at_end else g
            lo, hi = chunks[first].lo, chunks[end].hi
            leaf = self._merged.get((lo, hi)) or _Leaf(lo, hi, "top")
            p = leaf.refresh(self.lines, self.alive)
            if p.stmts is not None:
                return first, end, leaf
            exc = p.exc
            raw = exc.lineno
            if raw is None or raw < 1:
                raise _Fallback("syntax error without a line")
            reported = syntax_error_line(exc)
            idx = p.alive
            if at_end:
                return [idx[min(max(reported, 1), len(idx)) - 1]]
            guard_line = idx.index(self._code_start(chunks[g])) + 1
            if raw <= guard_line and 1 <= reported <= guard_line:
                if _TOKENIZER_ERROR.match(exc.msg) or all(self._end_state(c) == "fresh" for c in chunks[first:g]):
                    return [idx[reported - 1]]
            guards *= 2

    # -- pyflakes ---------------------------------------------------------------------------

    # -- pyflakes ---------------------------------------------------------------------------

    def _update_functions(self, dirty_units, full: bool) -> None:
        """Analyse the units' new leaves, index their functions, update the module pass."""
        new_funcs: set[_Func] = set()
        gone_funcs: set[_Func] = set()
        dirty_indices = []
        for unit in dirty_units:
            u = unit.index
            offset = 0
            keys = []
            funcs: list[_Func] = []
            cut_function = unit.mode == "split" and unit.block != "class"
            # a cut function's statements hold no module-level code: only its header counts here
            for leaf in unit.leaves[:1] if cut_function else unit.leaves:
                p = leaf.parse
                an = p.analysis
                if an is None:
                    an = p.analysis = self._analysis(leaf)
                if an.unsafe:
                    raise _Fallback(an.unsafe)
                an.unit = u
                an.offset = offset
                offset += an.nclasses
                keys.append(an.skel_key)
                funcs.extend(an.funcs)
            content = (unit.mode, tuple(keys))
            mp = unit.mp
            if mp is None or mp.content != content:
                dirty_indices.append(u)
            if cut_function:
                body = unit.body
                if body is None:
                    body = unit.body = _Body(unit)
                    body.facts = ((), frozenset(), frozenset())  # indexed by no name: told of every change
                funcs = [body]
                self._need.add(body)
            old = getattr(unit, "funcs_now", None) or []
            if old != funcs:
                gone_funcs.update(old)
                new_funcs.update(funcs)
                unit.funcs_now = funcs
            unit.content_now = content
            if cut_function:
                self._uncompiled.add(unit)
            else:
                self._uncompiled.update(unit.leaves)
            first = unit.leaves[0].parse
            has_future = unit.mode == "whole" and any(
                isinstance(st, ast.ImportFrom) and st.module == "__future__" for st in first.stmts)
            if has_future:
                self._future_units.add(unit)
            else:
                self._future_units.discard(unit)
        if full:
            current = {f for unit in self._units for f in unit.funcs_now}
            gone_funcs = self._funcs - current
            new_funcs = current - self._funcs
            units = set(self._units)
            self._future_units &= units
            for source in [s for s in self._raw if isinstance(s, (_Chunk, _Merged)) and s not in units]:
                self._set_errors(source, None)
        else:
            gone_funcs, new_funcs = gone_funcs - new_funcs, new_funcs - gone_funcs
        for f in gone_funcs:
            self._forget(f)
        for f in new_funcs:
            self._index(f)
        self._update_module_pass(sorted(dirty_indices), full)

    def _analysis(self, leaf: _Leaf) -> _Analysis:
        p = leaf.parse
        if leaf.kind == "member" and leaf.block != "class":  # function body: no module-level code
            an = _Analysis()
            an.skel_key = (None,)
            an.names = an.deferred_names = frozenset()
            return an
        if leaf.kind == "head":
            an = _analyze(p, [], ())
            c = p.classdef
            if leaf.block == "class":
                header = [*c.decorator_list, *c.bases, *c.keywords, *getattr(c, "type_params", ())]
                an.nclasses = 1
            else:
                header = [*c.decorator_list, c.args, *getattr(c, "type_params", ())]
                if c.returns is not None:
                    header.append(c.returns)
                header = [*header, *_deferred_parts([c])]
            an.unsafe = _deferred_hazards(header)
            an.names = frozenset(_names_in(header) | {c.name})
            an.deferred_names = frozenset(_names_in(_deferred_parts(header)))
            return an
        an = _analyze(p, p.stmts, (-1,) if leaf.kind == "member" else ())
        an.names = frozenset(_names_in(an.skel))
        an.deferred_names = frozenset(_names_in(_deferred_parts(an.skel)))
        return an

    def _body_names(self, body: _Body, field: str) -> set:
        """The union of a field (``names``, ``deleted``) over a cut function's statements."""
        out: set[str] = set()
        for member in body.chunk.members:
            out |= getattr(self._step_facts(member.parse), field)
        return out

    def _step_facts(self, p: _Parse) -> _Step:
        """A member's names (cached on its parse, as a fresh :class:`_Step`)."""
        step = p.step
        if step is None:
            step = p.step = _Step()
            if not p.stmts:
                return step
            step.names = frozenset(_names_in(p.stmts))
            step.deferred_names = frozenset(_names_in(_nested_deferred(p.stmts)))
            step.deleted = frozenset(n.id for st in p.stmts for n in ast.walk(st)
                                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Del))
        return step

    def _index(self, f: _Func) -> None:
        if f.facts is None:
            f.facts = self._facts(f)
        universe, declared, deleted = f.facts
        for name in universe:
            self._by_name.setdefault(name, set()).add(f)
        for name in declared:
            self._declared[name] = self._declared.get(name, 0) + 1
        for name in deleted:
            self._deleted[name] = self._deleted.get(name, 0) + 1
        self._funcs.add(f)
        self._need.add(f)
        if type(f) is _Body:
            self._bodies.add(f)

    def _forget(self, f: _Func) -> None:
        universe, declared, deleted = f.facts
        for name in universe:
            self._by_name[name].discard(f)
        for name in declared:
            self._declared[name] -= 1
            if not self._declared[name]:
                del self._declared[name]
        for name in deleted:
            self._deleted[name] -= 1
            if not self._deleted[name]:
                del self._deleted[name]
        self._funcs.discard(f)
        self._need.discard(f)
        self._bodies.discard(f)
        if type(f) is _Body:
            for source in f.sources:
                self._set_errors(source, None)
            f.sources = set()
            f.version = None
        self._set_errors(f, None)

    def _set_errors(self, source, raw) -> None:
        """Record a source's error messages (``(line, code, name)``; None: the source is gone)."""
        if raw:
            self._raw[source] = raw
        else:
            self._raw.pop(source, None)
        declared = self._filter
        lines = frozenset(line for line, code, name in raw or ()
                          if not (code == _UNDEFINED_NAME and name in declared))
        if lines:
            self._errors[source] = lines
        else:
            self._errors.pop(source, None)

    # the module pass, unit by unit

    def _sig_of(self, name: str, value) -> object:
        if value is _INITIAL:
            return "builtin" if name in self._builtins else None
        if value is _DELETED or value is None:
            return None
        return _binding_sig(value, _checker_classes()[2])

    def _lookup(self, name: str, index: int):
        """The binding of ``name`` after the units before ``index`` (``_INITIAL``: none bound it)."""
        hist = self._hist.get(name)
        if hist is None:
            return _INITIAL
        pos = bisect_left(hist[0], index)
        return hist[1][pos - 1] if pos else _INITIAL

    def _final(self, name: str):
        """The binding of ``name`` after the whole module pass, or None."""
        hist = self._hist.get(name)
        value = hist[1][-1] if hist and hist[1] else _INITIAL
        if value is _INITIAL:
            return self._builtins.get(name)
        return None if value is _DELETED else value

    def _final_sig(self, name: str):
        sig = self._fsig.get(name, _INITIAL)
        if sig is _INITIAL:
            sig = self._fsig[name] = self._sig_of(name, self._final(name))
        return sig

    def _hist_set(self, name: str, index: int, value) -> None:
        hist = self._hist.setdefault(name, ([], []))
        pos = bisect_left(hist[0], index)
        if pos < len(hist[0]) and hist[0][pos] == index:
            if value is None:
                del hist[0][pos], hist[1][pos]
            else:
                hist[1][pos] = value
        elif value is not None:
            hist[0].insert(pos, index)
            hist[1].insert(pos, value)

    def _set_mp(self, unit, mp: _ModulePass) -> None:
        old = unit.mp
        if old is not None and old.deferred_names is not mp.deferred_names:
            for name in old.deferred_names:
                self._deferred_users[name].discard(unit)
        if old is None or old.deferred_names is not mp.deferred_names:
            for name in mp.deferred_names:
                self._deferred_users.setdefault(name, set()).add(unit)
        unit.mp = mp

    def _update_module_pass(self, dirty: list[int], full: bool) -> None:
        """Rerun the units whose code or incoming bindings changed, in order.

        pyflakes checks module-level code statement by statement; a unit's
        result depends only on the bindings of the names it mentions when it
        starts (and three flags), and its effect is the bindings it leaves.
        ``changed`` holds the names whose binding differs from the previous
        probe's at the current point: once it is empty and no changed unit is
        left, the rest of the module pass is what it was.
        """
        units = self._units
        reran: list = []
        touched: set[str] = set()
        if full:
            self._hist = {}
            self._deferred_users = {}
            for unit in units:
                if unit.mp is not None:
                    for name in unit.mp.deferred_names:
                        self._deferred_users.setdefault(name, set()).add(unit)
            start, last_dirty = 0, len(units) - 1
        else:
            start, last_dirty = (dirty[0], dirty[-1]) if dirty else (len(units), -1)
        changed: dict[str, object] = {}
        flags_changed = False
        for i in range(start, len(units)):
            unit = units[i]
            old = unit.mp
            content = unit.content_now
            content_changed = old is None or old.content != content
            if not full and not content_changed and not flags_changed and changed.keys().isdisjoint(old.names):
                for name in old.delta:
                    changed.pop(name, None)
                if not changed and i >= last_dirty:
                    break
                continue
            flags_in = units[i - 1].mp.flags_after if i else _INITIAL_FLAGS
            if content_changed:
                leaves = unit.leaves[:1] if unit.mode == "split" and unit.block != "class" else unit.leaves
                names = frozenset().union(*(leaf.parse.analysis.names for leaf in leaves))
                deferred = frozenset().union(*(leaf.parse.analysis.deferred_names for leaf in leaves))
            else:
                names, deferred = old.names, old.deferred_names
            sig = (flags_in, tuple([self._sig_of(name, self._lookup(name, i)) for name in sorted(names)]))
            if not content_changed and old.input_sig == sig:
                new = old
            else:
                new = self._run_unit(unit, i, content, names, deferred, sig, flags_in)
                reran.append(unit)
            if full or new is not old:
                old_delta = {} if full or old is None else old.delta
                for name in old_delta.keys() | new.delta.keys():
                    touched.add(name)
                    if not full:
                        before = self._sig_of(name, self._lookup(name, i))
                        prev_before = changed[name] if name in changed else before
                        after = self._sig_of(name, new.delta[name]) if name in new.delta else before
                        prev_after = self._sig_of(name, old_delta[name]) if name in old_delta else prev_before
                        if after != prev_after:
                            changed[name] = prev_after
                        else:
                            changed.pop(name, None)
                    self._hist_set(name, i, new.delta.get(name))
                flags_changed = full or old is None or new.flags_after != old.flags_after
                if new is not old:
                    self._set_mp(unit, new)
            else:
                for name in old.delta:
                    changed.pop(name, None)
                flags_changed = False
        # what the functions and the deferred code see: the bindings at the end
        final_flags = units[-1].mp.flags_after if units else _INITIAL_FLAGS
        flags_moved = final_flags != self._final_flags
        self._final_flags = final_flags
        if full or flags_moved:
            self._fsig = {}
            final_changed = None  # everything
        else:
            final_changed = set()
            for name in touched:
                old_sig = self._fsig.pop(name, _INITIAL)
                if old_sig is _INITIAL or old_sig != self._final_sig(name):
                    final_changed.add(name)
        # deferred code: units that reran, and those whose names' final bindings changed
        if final_changed is None:
            again = set(units)
        else:
            again = set(reran)
            for name in final_changed:
                again.update(self._deferred_users.get(name, ()))
        for unit in sorted(again, key=lambda u: u.index):
            mp = unit.mp
            sig = (final_flags, tuple([self._final_sig(name) for name in sorted(mp.deferred_names)]))
            if mp.messages2 is not None and (sig == mp.phase2_sig or not mp.deferred_names):
                continue
            if mp.checker is None:  # its deferred code ran already: run the unit again, same input
                mp = self._run_unit(unit, unit.index, mp.content, mp.names, mp.deferred_names, mp.input_sig,
                                    mp.input_sig[0], keep=mp)
                self._set_mp(unit, mp)
                reran.append(unit)
            self._phase2(unit, mp, sig)
            self._set_errors(unit, mp.messages1 + mp.messages2)
        # functions whose context may have moved
        if final_changed is None:
            self._need.update(self._funcs)
            self._injected = frozenset()
            for f in self._funcs:
                if type(f) is _Body:
                    f.module_changed = None
        else:
            for name in final_changed:
                self._need.update(self._by_name.get(name, ()))
            if final_changed:
                for body in self._bodies:
                    if body.module_changed is not None:
                        body.module_changed |= final_changed
                    self._need.add(body)
            for unit in reran:
                if unit.mp.class_scopes:
                    for leaf in unit.leaves:
                        self._need.update(f for f in leaf.parse.analysis.funcs if f.chain)

    def _run_unit(self, unit, index: int, content, names: frozenset, deferred: frozenset, sig, flags_in,
                  keep: _ModulePass | None = None) -> _ModulePass:
        """Phase 1 of one unit: its module-level code after the bindings made before it."""
        UnitChecker, _, pf, Mark, _ = _checker_classes()
        self.unit_runs += 1
        body: list[ast.stmt] = []
        cid_of: dict[int, int] = {}
        if unit.mode == "split" and unit.block != "class":  # a cut function: its header, body ``pass``
            body.append(Mark(unit.leaves[0]))
            body.append(unit.leaves[0].parse.classdef)
        elif unit.mode == "split":
            head = unit.leaves[0]
            cls = copy.copy(head.parse.classdef)
            cls_body: list[ast.stmt] = []
            for leaf in unit.leaves[1:]:
                an = leaf.parse.analysis
                cls_body.append(Mark(leaf))
                cls_body.extend(an.skel)
                for k, c in enumerate(an.classes):
                    cid_of[id(c)] = an.offset + k
            cls.body = cls_body
            body.append(Mark(head))
            body.append(cls)
            cid_of[id(cls)] = 0
        else:
            for leaf in unit.leaves:
                an = leaf.parse.analysis
                body.append(Mark(leaf))
                body.extend(an.skel)
                for k, c in enumerate(an.classes):
                    cid_of[id(c)] = an.offset + k
        installed: dict[str, object] = {}
        builtins = self._builtins

        def install(checker):
            scope = checker.scopeStack[0]
            scope.update(builtins)
            for name in names:
                value = self._lookup(name, index)
                if value is _DELETED:
                    scope.pop(name, None)
                elif value is not _INITIAL:
                    scope[name] = copy.copy(value)
                installed[name] = scope.get(name)
            scope.importStarred, scope._futures_allowed, scope._annotations_future_enabled = flags_in

        checker = UnitChecker(ast.Module(body=body, type_ignores=[]), install, cid_of)
        scope = checker.module_scope
        mp = _ModulePass()
        mp.content, mp.names, mp.deferred_names, mp.input_sig = content, names, deferred, sig
        mp.checker = checker
        for name in names:
            after = scope.get(name)
            if after is not installed.get(name):
                mp.delta[name] = _DELETED if after is None else after
        mp.flags_after = (bool(scope.importStarred), bool(scope._futures_allowed),
                          bool(scope._annotations_future_enabled))
        mp.messages1 = self._decode(checker.messages)
        mp.class_scopes = checker.class_scopes
        if keep is not None:  # a rerun for the deferred code only: keep the bindings already shared
            mp.delta = keep.delta
        return mp

    def _phase2(self, unit, mp: _ModulePass, sig) -> None:
        """The unit's deferred code, against the final bindings."""
        names = set(mp.deferred_names)
        for name in mp.deferred_names:
            target = self._alias_target(name)
            if target is not None:
                names.add(target)
        flags = self._final_flags

        def install(scope):
            for name in names:
                b = self._final(name)
                if b is None:
                    scope.pop(name, None)
                else:
                    scope[name] = copy.copy(b)
            scope.importStarred = flags[0]
            scope._annotations_future_enabled = flags[2]

        mp.messages2 = self._decode(mp.checker.phase2(install))
        mp.phase2_sig = sig
        mp.checker = None

    def _decode(self, messages) -> list:
        out = []
        for msg in messages:
            code = PYFLAKES_ERRORS.get(type(msg).__name__)
            if code is None or code == "F822":  # UndefinedExport: decided with the functions' globals
                continue
            out.append((msg.lintseq_leaf.parse.orig(msg.lineno), code,
                        msg.message_args[0] if msg.message_args else None))
        return out

    def _alias_target(self, name: str) -> str | None:
        b = self._final(name)
        pf = _checker_classes()[2]
        if isinstance(b, pf.Importation) and b._has_alias():
            return b.fullName
        return None

    def _class_cid(self, f: _Func, local: int) -> tuple[int, int]:
        """Unit-wide ordinal of a class around ``f`` (``-1``: the class the unit is)."""
        an = f.parse.analysis
        return (an.unit, 0 if local == -1 else an.offset + local)

    def _class_node(self, cid: tuple[int, int]) -> ast.ClassDef:
        ordinal = cid[1]
        for leaf in self._units[cid[0]].leaves:
            an = leaf.parse.analysis
            if leaf.kind == "head":
                if ordinal == 0:
                    return leaf.parse.classdef
                continue
            if 0 <= ordinal - an.offset < len(an.classes):
                return an.classes[ordinal - an.offset]
        raise _Fallback("internal: unknown class")

    def _class_scope(self, cid: tuple[int, int]):
        scope = self._units[cid[0]].mp.class_scopes.get(cid[1])
        if scope is None:
            raise _Fallback("internal: class scope missing")
        return scope

    def _facts(self, f: _Func):
        text = f.text
        facts = self._facts_cache.get(text)
        if facts is None:
            facts = _function_facts(f.node)
            self._facts_cache[text] = facts
            if len(self._facts_cache) > 4096:
                self._facts_cache.popitem(last=False)
        return facts

    def _pyflakes(self) -> list[int]:
        pf = _checker_classes()[2]
        declared = frozenset(self._declared)
        if declared:
            if any(type(self._final(x)) is pf.Annotation for x in declared):
                raise _Fallback("global name bound by a bare annotation")
            if not declared.isdisjoint(self._deleted) or any(
                    not declared.isdisjoint(self._body_names(f, "deleted")) for f in self._bodies):
                raise _Fallback("function deletes a global or nonlocal name")
        if declared != self._filter:  # the names whose UndefinedName messages pyflakes drops
            self._filter = declared
            for source, raw in list(self._raw.items()):
                self._set_errors(source, raw)
        injected = frozenset(x for x in declared if self._final(x) is None)
        if injected != self._injected:
            for name in injected.symmetric_difference(self._injected):
                self._need.update(self._by_name.get(name, ()))
            self._injected = injected
        for f in self._need:
            if type(f) is _Body:
                if injected and not injected.isdisjoint(self._body_names(f, "names")):
                    raise _Fallback("global injected into a long function's names")
                self._replay(f)
                continue
            f.key = self._function_key(f, injected)
            f.result = self._function_result(f, f.key, injected, declared)
            self._set_errors(f, [(f.orig[rel], code, name) for rel, code, name in f.result])
        self._need = set()
        errors: set[int] = set()
        for lines in self._errors.values():
            errors |= lines
        export = self._final("__all__")
        if type(export) is pf.ExportBinding and not self._final_flags[0]:
            if any(self._final(n) is None and n not in declared for n in export.names):
                errors.add(export.lintseq_leaf.parse.orig(export.source.lineno))
        return sorted(errors)

    def _function_key(self, f: _Func, injected: frozenset) -> tuple:
        """Everything outside ``f``'s text that its pyflakes errors depend on."""
        universe = f.facts[0]
        flags = self._final_flags
        parts: list = [(flags[0], flags[2]), f.conditional, len(f.chain)]
        parts.extend([self._final_sig(name) for name in universe])
        for name in universe:
            target = self._alias_target(name)
            if target is not None:
                parts.append((target, self._final_sig(target)))
        pf = _checker_classes()[2]
        for local in f.chain:
            cid = self._class_cid(f, local)
            mp = self._units[cid[0]].mp
            csig = mp.class_sigs.get(cid[1])
            if csig is None:
                csig = mp.class_sigs[cid[1]] = {name: _binding_sig(b, pf)
                                                for name, b in self._class_scope(cid).items()}
            parts.append(tuple(csig.get(name) for name in universe))
            params = getattr(self._class_node(cid), "type_params", None)
            if params:
                parts.append(tuple(ast.dump(p) for p in params))
        if injected:
            parts.append(tuple(name for name in universe if name in injected))
        return tuple(parts)

    def _function_result(self, f: _Func, key: tuple, injected: frozenset, declared: set) -> tuple:
        cache_key = (f.text, key)
        cached = self._func_cache.get(cache_key)
        if cached is not None:
            self._func_cache.move_to_end(cache_key)
            return cached
        result = self._run_function(f, ())
        inject = [name for name in f.facts[0] if name in injected]
        if inject:
            # pyflakes adds these names to the module scope when it meets the global or
            # nonlocal statement; the result must not depend on whether that came first.
            other = self._run_function(f, inject)

            def kept(msgs):
                return [m for m in msgs if not (m[1] == _UNDEFINED_NAME and m[2] in declared)]

            if kept(result) != kept(other):
                raise _Fallback("result depends on when a global is injected")
        self._func_cache[cache_key] = result
        if len(self._func_cache) > 4096:
            self._func_cache.popitem(last=False)
        return result

    def _run_function(self, f: _Func, inject) -> tuple:
        _, FunctionChecker, pf, _, _ = _checker_classes()
        self.function_runs += 1
        target = _strip_header(f.node)
        inner: ast.stmt = target
        dummies = []
        for local in reversed(f.chain):
            cid = self._class_cid(f, local)
            real = self._class_node(cid)
            dummy = ast.ClassDef(name="<lintseq>", bases=[], keywords=[], body=[inner], decorator_list=[])
            if hasattr(real, "type_params"):
                dummy.type_params = real.type_params
            dummies.append((dummy, self._class_scope(cid)))
            inner = dummy
        if f.conditional:
            inner = ast.If(test=ast.Constant(True), body=[inner], orelse=[])
        universe = f.facts[0]
        names = set(universe)
        for name in universe:
            target_name = self._alias_target(name)
            if target_name is not None:
                names.add(target_name)
        flags = self._final_flags

        builtins = self._builtins

        def install(checker):
            scope = checker.scopeStack[0]
            scope.update(builtins)
            for name in names:
                b = self._final(name)
                if b is None:
                    scope.pop(name, None)
                else:
                    scope[name] = copy.copy(b)
            scope.importStarred = flags[0]
            scope._annotations_future_enabled = flags[2]
            for dummy, real_scope in dummies:
                dummy_scope = checker.dummy_scopes[id(dummy)]
                for name in universe:
                    b = real_scope.get(name)
                    if b is None:
                        dummy_scope.pop(name, None)
                    else:
                        dummy_scope[name] = copy.copy(b)
            for name in inject:
                node = ast.Global(names=[name], lineno=1, col_offset=0, end_lineno=1, end_col_offset=0)
                binding = pf.Assignment(name, node)
                binding.used = (scope, node)
                scope[name] = binding

        checker = FunctionChecker(ast.Module(body=[inner], type_ignores=[]), target, install)
        out = []
        for msg in checker.messages:
            code = PYFLAKES_ERRORS.get(type(msg).__name__)
            if code is None or code == "F822":
                continue
            out.append((msg.lineno - f.start, code, msg.message_args[0] if msg.message_args else None))
        return tuple(sorted(out, key=lambda m: (m[0], m[1], str(m[2]))))

    # a long function, statement by statement

    def _replay(self, body: _Body) -> None:
        """Check a cut function's body again: rerun the statements whose inputs changed.

        As :meth:`_update_module_pass`, with the function scope for the module
        scope and one more kind of input: for each module-level name, whether
        the body has read it so far (and where), kept as the key ``("M", name)``.
        Statements are visited in order, jumping straight to the next one that
        changed or mentions a name whose binding changed (an index of the names
        each statement mentions), so a probe costs what it touched.
        """
        chunk = body.chunk
        members = chunk.members  # all of them: an emptied statement is a step that does nothing
        head = chunk.head.parse
        full = body.version != chunk.members_version or head is not body.head
        if full:
            for source in body.sources:
                self._set_errors(source, None)
            body.version, body.head, body.size = chunk.members_version, head, len(members)
            body.hist, body.fsig, body.sources = {}, {}, set()
            body.initial = self._arguments(head.classdef)
            body.applied = [{} for _ in members]
            body.names_at = [frozenset()] * len(members)
            body.users, body.deferred_users = {}, {}
            dirty = set(range(len(members)))
            chunk.changed_members = set()
        else:
            dirty = chunk.changed_members
            chunk.changed_members = set()
        for i in dirty:  # (re)index the statements parsed again
            step = self._step_facts(members[i].parse)
            old = body.names_at[i]
            if step.names is not old:
                for name in old:
                    self._index_remove(body.users, name, i)
                    self._index_remove(body.deferred_users, name, i)
                for name in step.names:
                    self._index_add(body.users, name, i)
                for name in step.deferred_names:
                    self._index_add(body.deferred_users, name, i)
                body.names_at[i] = step.names
        if body.module_changed is None:
            dirty = set(range(len(members)))
        else:
            dirty = set(dirty)
            for name in body.module_changed:
                dirty.update(body.users.get(name, ()))
        body.module_changed = set()
        applied = body.applied
        reran: list[int] = []
        touched: set = set()
        changed: dict = {}
        queue = sorted(dirty)
        q = 0
        i = queue[0] if queue else None
        while i is not None:
            step = self._step_facts(members[i].parse)
            old_delta = applied[i]
            if not members[i].parse.stmts:  # nothing left of this statement
                if step.input_sig != ():
                    step.input_sig, step.messages1, step.messages2, step.delta = (), [], [], {}
                    self._set_errors((body, i), None)
            else:
                sig = self._step_sig(body, i, step.names)
                if sig != step.input_sig:
                    self._run_step(body, i, members[i].parse, step, sig)
                    reran.append(i)
            new_delta = step.delta
            if new_delta is not old_delta:
                for key in old_delta.keys() | new_delta.keys():
                    touched.add(key)
                    if not full:
                        before = self._step_value_sig(body, key, self._body_lookup(body, key, i))
                        prev_before = changed[key] if key in changed else before
                        after = self._step_value_sig(body, key, new_delta[key]) if key in new_delta else before
                        prev_after = (self._step_value_sig(body, key, old_delta[key]) if key in old_delta
                                      else prev_before)
                        if after != prev_after:
                            changed[key] = prev_after
                        else:
                            changed.pop(key, None)
                    self._hist_set_in(body.hist, key, i, new_delta.get(key))
                applied[i] = new_delta
            else:
                for key in old_delta:
                    changed.pop(key, None)
            # the next statement to look at: the next changed one, or the next that
            # mentions a name whose binding (or read) differs from before
            while q < len(queue) and queue[q] <= i:
                q += 1
            nxt = queue[q] if q < len(queue) else None
            for key in changed:
                users = body.users.get(key[1] if isinstance(key, tuple) else key)
                if users:
                    pos = bisect_left(users, i + 1)
                    if pos < len(users) and (nxt is None or users[pos] < nxt):
                        nxt = users[pos]
            i = nxt
        # nested functions and lambdas: against the final bindings of the body
        final_changed = set()
        end = len(members)
        for key in touched:
            if isinstance(key, tuple):
                continue
            sig = self._step_value_sig(body, key, self._body_lookup(body, key, end))
            if full or body.fsig.get(key, _INITIAL) != sig:
                final_changed.add(key)
            body.fsig[key] = sig
        again = set(reran)
        for name in final_changed:
            again.update(body.deferred_users.get(name, ()))
        for i in sorted(again):
            p = members[i].parse
            step = self._step_facts(p)
            if not p.stmts:
                continue
            sig = tuple(body.fsig[name] if name in body.fsig else
                        self._step_value_sig(body, name, self._body_lookup(body, name, end))
                        for name in sorted(step.deferred_names))
            if not (step.messages2 is not None and (sig == step.phase2_sig or not step.deferred_names)):
                if step.checker is None:
                    self._run_step(body, i, p, step, step.input_sig)
                self._step_phase2(body, p, step, sig)
            self._set_errors((body, i), step.messages1 + step.messages2)
            body.sources.add((body, i))

    @staticmethod
    def _index_add(index: dict, name, i: int) -> None:
        users = index.setdefault(name, [])
        pos = bisect_left(users, i)
        if pos == len(users) or users[pos] != i:
            users.insert(pos, i)

    @staticmethod
    def _index_remove(index: dict, name, i: int) -> None:
        users = index.get(name)
        if users:
            pos = bisect_left(users, i)
            if pos < len(users) and users[pos] == i:
                del users[pos]

    def _arguments(self, header) -> dict:
        """The function scope after the arguments are bound (what the first statement sees)."""
        BodyChecker = _checker_classes()[4]
        target = _strip_header(header)
        target.body = [ast.Pass(lineno=1, col_offset=0, end_lineno=1, end_col_offset=4)]
        checker = BodyChecker(ast.Module(body=[target], type_ignores=[]), target,
                              lambda c: c.scopeStack[0].update(self._builtins), lambda c: None)
        return checker.initial or {}

    def _body_lookup(self, body: _Body, key, index: int):
        hist = body.hist.get(key)
        if hist is None:
            return _INITIAL
        pos = bisect_left(hist[0], index)
        return hist[1][pos - 1] if pos else _INITIAL

    @staticmethod
    def _hist_set_in(hists: dict, key, index: int, value) -> None:
        hist = hists.setdefault(key, ([], []))
        pos = bisect_left(hist[0], index)
        if pos < len(hist[0]) and hist[0][pos] == index:
            if value is None:
                del hist[0][pos], hist[1][pos]
            else:
                hist[1][pos] = value
        elif value is not None:
            hist[0].insert(pos, index)
            hist[1].insert(pos, value)

    def _step_value_sig(self, body: _Body, key, value):
        if isinstance(key, tuple):  # ("M", name): the line of the body's last read of it
            return value if isinstance(value, int) else None
        if value is _INITIAL:
            value = body.initial.get(key)
        if value is None or value is _DELETED:
            return None
        return _binding_sig(value, _checker_classes()[2])

    def _step_sig(self, body: _Body, index: int, names: frozenset) -> tuple:
        return tuple([(self._step_value_sig(body, name, self._body_lookup(body, name, index)),
                       self._step_value_sig(body, ("M", name), self._body_lookup(body, ("M", name), index)),
                       self._final_sig(name)) for name in sorted(names)])

    def _module_names(self, names) -> set:
        out = set(names)
        for name in names:
            target = self._alias_target(name)
            if target is not None:
                out.add(target)
        return out

    def _run_step(self, body: _Body, index: int, p: _Parse, step: _Step, sig) -> None:
        """Phase 1 of one statement: checked after the bindings (and reads) before it."""
        BodyChecker = _checker_classes()[4]
        self.function_runs += 1
        target = _strip_header(body.head.classdef)
        target.body = p.stmts
        names = step.names
        mnames = self._module_names(names)
        flags = self._final_flags
        builtins = self._builtins
        installed: dict = {}
        read_before: dict = {}

        def install_module(checker):
            scope = checker.scopeStack[0]
            scope.update(builtins)
            for name in mnames:
                b = self._final(name)
                if b is None:
                    scope.pop(name, None)
                else:
                    scope[name] = copy.copy(b)
            scope.importStarred = flags[0]
            scope._annotations_future_enabled = flags[2]

        def install_scope(checker):
            fs = checker.scope
            for name in names:
                value = self._body_lookup(body, name, index)
                if value is _INITIAL:
                    value = body.initial.get(name)
                if value is None or value is _DELETED:
                    fs.pop(name, None)
                else:
                    fs[name] = copy.copy(value)
                installed[name] = fs.get(name)
            module = checker.scopeStack[0]
            for name in mnames:
                line = self._body_lookup(body, ("M", name), index)
                if isinstance(line, int):
                    read_before[name] = line
                    b = module.get(name)
                    if b is not None:
                        b.used = (fs, ast.Name(id=name, ctx=ast.Load(), lineno=-line - 1, col_offset=0))

        checker = BodyChecker(ast.Module(body=[target], type_ignores=[]), target, install_module, install_scope)
        fs = checker.f_scope
        module = checker.module_scope
        delta: dict = {}
        for name in names:
            after = fs.get(name)
            if after is not installed.get(name):
                delta[name] = _DELETED if after is None else after
        for name in mnames:
            b = module.get(name)
            used = getattr(b, "used", None)
            line = self._line_of(p, used[1]) if used and used[0] is fs else None
            if line != read_before.get(name):
                delta[("M", name)] = _DELETED if line is None else line
        step.input_sig = sig
        step.checker = checker
        step.delta = delta
        step.messages1 = self._body_messages(p, checker.messages)
        step.messages2 = None

    @staticmethod
    def _line_of(p: _Parse, node) -> int:
        lineno = node.lineno
        return -lineno - 1 if lineno < 0 else p.orig(lineno)

    def _body_messages(self, p: _Parse, messages) -> list:
        out = []
        for msg in messages:
            code = PYFLAKES_ERRORS.get(type(msg).__name__)
            if code is None or code == "F822":
                continue
            lineno = msg.lineno
            out.append((-lineno - 1 if lineno < 0 else p.orig(lineno), code,
                        msg.message_args[0] if msg.message_args else None))
        return out

    def _step_phase2(self, body: _Body, p: _Parse, step: _Step, sig) -> None:
        end = body.size

        def install(fs):
            for name in step.deferred_names:
                value = self._body_lookup(body, name, end)
                if value is _INITIAL:
                    value = body.initial.get(name)
                if value is None or value is _DELETED:
                    fs.pop(name, None)
                else:
                    fs[name] = copy.copy(value)

        start = len(step.checker.messages)
        step.checker.phase2(install)
        step.messages2 = self._body_messages(p, step.checker.messages[start:])
        step.phase2_sig = sig
        step.checker = None

    # -- compile ----------------------------------------------------------------------------

    def _compile(self, full: bool) -> None:
        """Compile every new leaf (with the module's future flags); fall back if one fails."""
        flags = self._future_flags()
        if full or flags != self._flags:
            self._flags = flags
            self._bad_compile = set()
            self._uncompiled = set()
            for unit in self._units:
                if unit.mode == "split" and unit.block != "class":
                    self._uncompiled.add(unit)
                else:
                    self._uncompiled.update(unit.leaves)
        current = None
        for leaf in self._uncompiled:
            if not isinstance(leaf, _Leaf):  # a cut function, compiled whole
                if leaf.mode != "split":  # not cut any more: its leaf is compiled instead
                    self._bad_compile.discard(leaf)
                    continue
                ok = self._compile_function(leaf, flags)
                if ok:
                    self._bad_compile.discard(leaf)
                else:
                    self._bad_compile.add(leaf)
                continue
            p = leaf.parse
            if p.tree is None:  # a member of comments only, or a leaf no unit uses now
                self._bad_compile.discard(leaf)
                continue
            ok = p.compiled.get(flags)
            if ok is None:
                key = (leaf.kind, leaf.indent, tuple(p.lines), flags)
                ok = self._compile_cache.get(key)
                if ok is None:
                    try:
                        compile(p.tree, _FILENAME, "exec", flags=flags, dont_inherit=True)
                        ok = True
                    except (SyntaxError, ValueError, RecursionError, MemoryError):
                        ok = False
                    self._compile_cache[key] = ok
                    if len(self._compile_cache) > 4096:
                        self._compile_cache.popitem(last=False)
                p.compiled[flags] = ok
            if ok:
                self._bad_compile.discard(leaf)
            else:
                self._bad_compile.add(leaf)
        self._uncompiled = set()
        if self._bad_compile:
            if current is None:
                current = set(self._units)
                current.update(leaf for unit in self._units for leaf in unit.leaves)
            self._bad_compile &= current
            if self._bad_compile:
                raise _Fallback("compile error")

    def _compile_function(self, unit, flags: int) -> bool:
        """Compile a cut function whole: the compiler's checks span its statements."""
        parses = tuple(member.parse for member in unit.members)
        key = (unit.content_now, unit.head.parse, parses, flags)
        if unit.compiled_key == key:
            return unit.compiled_ok
        function = copy.copy(unit.head.parse.classdef)
        function.body = [st for p in parses if p.stmts for st in p.stmts]
        try:
            compile(ast.Module(body=[function], type_ignores=[]), _FILENAME, "exec", flags=flags, dont_inherit=True)
            ok = True
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            ok = False
        unit.compiled_key, unit.compiled_ok = key, ok
        return ok

    def _future_flags(self) -> int:
        """The compiler flags of the module's __future__ imports (checking they come first)."""
        if not self._future_units:
            return 0
        remaining = len(self._future_units)
        flags = 0
        allowed = True
        docstring = False
        for unit in self._units:
            stmts = unit.leaves[0].parse.stmts if unit.mode == "whole" else [unit.leaves[0].parse.classdef]
            has_future = False
            for st in stmts:
                if isinstance(st, ast.ImportFrom) and st.module == "__future__":
                    has_future = True
                    if not allowed:
                        raise _Fallback("__future__ import not at the top")
                    for alias in st.names:
                        feature = getattr(_future_module, alias.name, None)
                        if not isinstance(feature, _future_module._Feature) or alias.name == "barry_as_FLUFL":
                            raise _Fallback("unknown or parser-changing __future__ feature")
                        flags |= feature.compiler_flag
                elif (not docstring and isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)
                      and isinstance(st.value.value, str)):
                    docstring = True
                else:
                    allowed = False
            if has_future:
                remaining -= 1
                if not remaining:
                    return flags
        return flags


def _end_state(text: str) -> str:
    """How the tokenizer ends ``text``: ``fresh``, ``string`` (inside a triple-quoted one) or ``other``."""
    try:
        for _ in tokenize.generate_tokens(io.StringIO(text).readline):
            pass
    except tokenize.TokenError as exc:
        return "string" if "string" in str(exc.args[0]) else "other"
    except Exception:  # noqa: BLE001 - IndentationError, SyntaxError on 3.12+
        return "other"
    return "fresh"
