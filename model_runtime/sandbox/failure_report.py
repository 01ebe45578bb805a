"""The pytest failure report: what failed, in which function under test, written once for both sides.

The pytest plugin (:mod:`model_runtime.pytest_plugin`) writes it after every
run with ``--editseq``; the language server watches it and turns each failure
into a diagnostic on the *function under test*, with the test as related
information. Both sides import this module, so the schema lives here only.

File: ``<rootdir>/.editseq/pytest-report.json`` (:data:`REPORT_RELPATH`). It is
replaced atomically (a temporary file in the same folder, then
``os.replace``), so a reader sees the old report or the new one, never half
of one. The folder gets a ``.gitignore`` of ``*`` so the report never shows
up in ``git status``. A reader gets ``None`` for a missing, unreadable,
partial or other-version file: the report is a cache, and a stale or broken
one must never take the server down.

JSON (``version`` :data:`REPORT_VERSION`)::

    {"version": 1, "created": 1767225600.0, "root": "/abs/rootdir",
     "failures": [{"node_id": "tests/test_m.py::test_f", "test_path": "tests/test_m.py",
                   "test_line": 12, "message": "assert 3 == 4", "target_path": "pkg/m.py",
                   "target_function": "Calc.add", "target_line": 7, "expected": "4",
                   "actual": "3", "feedback": "Test Case Failed: ...", "phase": "call"}],
     "passed": ["tests/test_m.py::test_g"]}

Lines are 1-based; paths are relative to ``root`` with ``/`` separators.

**The function under test** of a failure is found from its traceback
(:func:`function_under_test`). A test frame is one in a test file (or in the
running test's own module); a code frame is one in a workspace file that is
not a test file, inside a function or method. The function under test is the
one the test called: walking the traceback from the innermost test frame
that calls into the code, the first code frame — not the deepest one (a bug
in ``seekable.seek`` that makes its helper ``consume`` raise is ``seek``'s;
the line reported is the line of the target that was running, there the call
of the helper). Unless:

* the frame is a *pass-through*: a wrapper holding the next code frame's
  function (a decorator's closure with it as a free variable, or an object
  with it in an attribute of ``self``: ``functools.wraps`` wrappers, class
  decorators, ``curry``) — the wrapped function is the one under test;
* the test's name does not name that function, but names a deeper one: the
  words of the test's function and class names (``SeekableTest::test_seek``:
  ``seekable``, ``seek``) against those of the qualname and its class
  (``seekable.__next__``: ``seekable``, ``next``). The test called a helper of
  its own to drive what it tests (``take(5, s)`` for a ``seekable`` ``s``),
  and what it names is what it tests.

With no test frame in front of the code (a doctest, a test module pytest was
told to collect under another name) the innermost code frame is taken.

A plain ``assert f(x) == y`` has no code frame — the test's own frame is the
innermost one — so the failing statement is read in that frame's namespace
(:func:`_statement_candidates`): its calls, those of the actual operand first
(the operand that is the code's result, whatever the order:
:meth:`~model_runtime.sandbox.pytest_json_plugin.Sides.actual_is_right`)
resolved without running anything (``f``, ``obj.method``, ``Class().method``,
``module.f``, a ``functools.partial``, a decorated function or what an
object that holds one function wraps, as ``curry``; a function passed to a
call, as in ``pytest.raises(E, f, x)``, runs there too); for a ``with
pytest.raises(E):`` or ``self.assertRaises`` block that did not raise, the
statements of its body. Then the values it reads, followed back in the test
function to what last acted on them: the assignment that gave a name its
value (``y = inc(1)``), a method called on it or a call it was passed to
(``s.seek(3)``, ``next(it)`` before ``assert list(s) == ...``), latest first,
and so on for the values those read; then the special methods it exercises implicitly on an object
of a workspace class (``list(s)``: ``__next__`` or ``__iter__``, ``s[i]``:
``__getitem__``, ``x in s``: ``__contains__``, ``len(s)``: ``__len__``...);
constructors (``__init__``) last. Of these the first that the test's name
names wins, else the first. Either way the frame or function is mapped to the
qualname of its enclosing top-level function or method with :mod:`ast`
(``f``, ``Class.method``, ``Outer.Inner.method``); a nested function maps to
the function that contains it, because that is what can be refined.

**Expected and actual** of a failing assertion (plain ``==``, ``is``, ``!=``,
``<``, ``in``..., and the unittest assertions) are worked out where the test
ran: :func:`model_runtime.sandbox.pytest_json_plugin.failure_values` says
which operand is which and how ``expected`` is worded.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import json
import os
import re
import stat
import tempfile
import time
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "REPORT_RELPATH",
    "REPORT_VERSION",
    "FailureReport",
    "Frame",
    "FunctionUnderTest",
    "TestFailure",
    "enclosing_function",
    "frames_in_text",
    "function_under_test",
    "is_test_file",
    "read_report",
    "report_path",
    "target_of_case",
    "workspace_file",
    "write_report",
]

REPORT_RELPATH = ".editseq/pytest-report.json"
#: Bumped on any incompatible change; readers treat another version as no report.
REPORT_VERSION = 1

#: Folders whose files are never the user's code, even inside the workspace.
_FOREIGN_DIRS = frozenset({
    "site-packages", "dist-packages", ".venv", "venv", ".tox", ".nox", "node_modules", "__pycache__",
})
_FRAME_LINE = re.compile(r"^(?P<path>[^\s:][^:\n]*?\.py):(?P<line>\d+):", re.MULTILINE)
_MISSING = object()


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class TestFailure:
    """One failing test, and the function it points at (``None`` when none is in the workspace).

    ``target_line`` is the line inside the target that failed when the
    traceback passes through it, else the target's ``def`` line. ``phase`` is
    pytest's ``setup``/``call``/``teardown`` (a setup failure is an error in a
    fixture, not in the test).
    """

    __test__ = False  # a class named Test*: not for pytest to collect

    node_id: str
    test_path: str
    test_line: int
    message: str
    target_path: str | None
    target_function: str | None
    target_line: int | None
    expected: str | None
    actual: str | None
    feedback: str
    phase: str = "call"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestFailure:
        """Checked field by field: a wrong type raises ``ValueError`` instead of a bad object."""
        return cls(
            node_id=_get(data, "node_id", str),
            test_path=_get(data, "test_path", str),
            test_line=_get(data, "test_line", int),
            message=_get(data, "message", str),
            target_path=_get(data, "target_path", str, optional=True),
            target_function=_get(data, "target_function", str, optional=True),
            target_line=_get(data, "target_line", int, optional=True),
            expected=_get(data, "expected", str, optional=True),
            actual=_get(data, "actual", str, optional=True),
            feedback=_get(data, "feedback", str),
            phase=_get(data, "phase", str, default="call"),
        )


@dataclass(frozen=True)
class FailureReport:
    """One pytest run's outcome for the workspace at ``root`` (absolute); ``created`` is epoch seconds."""

    version: int
    created: float
    root: str
    failures: tuple[TestFailure, ...]
    passed: tuple[str, ...]

    @classmethod
    def new(cls, root: str | os.PathLike[str], failures: Iterable[TestFailure], passed: Iterable[str]) -> FailureReport:
        """A report of the current version, made now."""
        return cls(REPORT_VERSION, time.time(), str(Path(root).resolve()), tuple(failures), tuple(passed))

    def failures_for(self, path: str, function: str | None = None) -> list[TestFailure]:
        """The failures whose function under test is in ``path`` (relative to root), and is ``function`` if given."""
        wanted = _posix(path)
        return [
            f for f in self.failures
            if f.target_path == wanted and (function is None or f.target_function == function)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "created": self.created, "root": self.root,
            "failures": [f.to_dict() for f in self.failures], "passed": list(self.passed),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FailureReport:
        """Raises ``ValueError`` for another version or any malformed field."""
        if not isinstance(data, Mapping):
            raise ValueError("a report is a JSON object")
        version = _get(data, "version", int)
        if version != REPORT_VERSION:
            raise ValueError(f"report version {version}, this editseq reads {REPORT_VERSION}")
        failures, passed = data.get("failures"), data.get("passed")
        if not isinstance(failures, list) or not isinstance(passed, list):
            raise ValueError("failures and passed must be lists")
        if not all(isinstance(p, str) for p in passed):
            raise ValueError("passed must hold node ids")
        return cls(
            version=version, created=float(_get(data, "created", (int, float))), root=_get(data, "root", str),
            failures=tuple(TestFailure.from_dict(f) for f in failures), passed=tuple(passed),
        )


def _get(data: Mapping[str, Any], name: str, kind, *, optional: bool = False, default: Any = _MISSING) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError("a failure is a JSON object")
    if name not in data:
        if default is not _MISSING:
            return default
        raise ValueError(f"missing field {name!r}")
    value = data[name]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):  # bool is an int; never a valid field here
        raise ValueError(f"field {name!r} has the wrong type: {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- the file


def report_path(root: str | os.PathLike[str]) -> Path:
    """Where the report of the workspace ``root`` lives."""
    return Path(root) / REPORT_RELPATH


def write_report(root: str | os.PathLike[str], report: FailureReport) -> Path:
    """Replace the report atomically; a watcher never reads a half-written file."""
    path = report_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    fd, temporary = tempfile.mkstemp(prefix=".pytest-report.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(report.to_dict(), out, ensure_ascii=False, indent=1)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the report from other readers
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path


#: A report over this is not read (a real one is a few KB per failing test).
MAX_REPORT_BYTES = 16 * 1024 * 1024


def read_report(root: str | os.PathLike[str]) -> FailureReport | None:
    """The report, or ``None`` when it is absent, unreadable, partial, of another version, or not a
    plain file of at most :data:`MAX_REPORT_BYTES`.

    The report is always a regular file written by an atomic rename, so
    anything else at its path is refused unread: a FIFO (opening it would block
    until a writer came), a link (to ``/dev/zero``, read until memory runs out).
    """
    try:
        fd = os.open(report_path(root), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_REPORT_BYTES + 1)
        if len(data) > MAX_REPORT_BYTES:
            return None
        return FailureReport.from_dict(json.loads(data.decode("utf-8")))
    except (OSError, ValueError, TypeError, RecursionError, MemoryError):
        return None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the function under test


@dataclass(frozen=True)
class Frame:
    """One traceback entry: a file, a 1-based line and, from a live traceback, the frame's names
    (locals, then globals) and its code object."""

    path: str
    line: int
    namespace: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    code: types.CodeType | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FunctionUnderTest:
    """``path`` relative to the workspace, ``function`` its qualname, ``line`` 1-based."""

    path: str
    function: str
    line: int


def is_test_file(relative: str | os.PathLike[str]) -> bool:
    """pytest's default test modules, ``conftest.py``, and anything under a ``tests/`` folder."""
    parts = PurePosixPath(_posix(os.fspath(relative))).parts
    name = parts[-1] if parts else ""
    return (
        (name.startswith("test_") and name.endswith(".py")) or name.endswith("_test.py")
        or name == "conftest.py" or "tests" in parts[:-1]
    )


def workspace_file(workspace: Path, path: str) -> str | None:
    """``path`` relative to the resolved ``workspace`` (posix), if it is a source file of the user's.

    ``None`` outside the workspace, and inside it in a virtualenv, a tool's
    folder or a cache: library code is never the function under test.
    """
    try:
        relative = Path(path).resolve().relative_to(workspace)
    except (ValueError, OSError):
        return None
    if _FOREIGN_DIRS.intersection(relative.parts) or relative.suffix != ".py":
        return None
    return relative.as_posix()


def enclosing_function(source: str, line: int) -> tuple[str, int] | None:
    """The qualname and ``def`` line of the top-level function or method that holds ``line``."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    return _enclosing(tree.body, line, "")


def function_under_test(
    root: str | os.PathLike[str], frames: Sequence[Frame], *, test: str | None = None,
) -> FunctionUnderTest | None:
    """The function a failure points at (see the module docstring); ``frames`` run outermost first.

    ``test`` is the failing test's node id (``tests/test_m.py::Class::test_f[1]``): its module counts as a
    test file, and its names say what it tests.
    """
    workspace = Path(root).resolve()
    test_file = _posix(test.split("::", 1)[0]) if test else None
    words = _test_words(test)
    marks = []  # per frame: (relative path, is a test frame, (qualname, def line) of a code frame)
    for frame in frames:
        relative = workspace_file(workspace, frame.path)
        testing = relative is not None and (is_test_file(relative) or relative == test_file)
        found = None if relative is None or testing else _enclosing_in(workspace, relative, frame.line)
        marks.append((relative, testing, found))
    code = [i for i, mark in enumerate(marks) if mark[2] is not None]
    if code:
        callers = [i for i, mark in enumerate(marks) if mark[1] and i < code[-1]]
        if not callers:  # nothing of the tests' in front of the code: the innermost code frame
            pick = code[-1]
        else:
            chain = [i for i in code if i > callers[-1]]
            at = 0
            while at + 1 < len(chain) and _passes_through(frames[chain[at]], frames[chain[at + 1]]):
                at += 1
            pick = chain[at]
            if words and not _named(marks[pick][2][0], words):
                pick = next((i for i in chain[at + 1:] if _named(marks[i][2][0], words)), pick)
        return FunctionUnderTest(marks[pick][0], marks[pick][2][0], frames[pick].line)
    for frame in reversed(frames):
        if frame.namespace is not None and workspace_file(workspace, frame.path) is not None:
            try:
                found = _statement_candidates(workspace, frame, test_file)
            except Exception:  # noqa: BLE001 - the user's objects are odd in unforeseen ways; no target then
                found = []
            if found:
                return next((f for f in found if _named(f.function, words)), found[0])
    return None


def frames_in_text(traceback: str) -> list[Frame]:
    """The ``path:line:`` locations of a pytest traceback as text (e.g. a sandbox ``CaseResult``)."""
    return [Frame(m["path"], int(m["line"])) for m in _FRAME_LINE.finditer(traceback)]


def target_of_case(root: str | os.PathLike[str], case) -> FunctionUnderTest | None:
    """:func:`function_under_test` for a :class:`~model_runtime.sandbox.runner.CaseResult`.

    The sandbox keeps only text, so the statement's calls cannot be resolved
    and no wrapper is seen through: this finds a target only when the
    traceback passes through workspace code outside the tests (an exception,
    not a bare ``assert f(x) == y``).
    """
    frames = frames_in_text(case.traceback)
    if case.file and case.line:
        frames.append(Frame(case.file, case.line))
    absolute = [Frame(str(Path(root) / f.path), f.line) for f in frames]
    return function_under_test(root, absolute, test=case.node_id)


def _enclosing(body: list[ast.stmt], line: int, prefix: str) -> tuple[str, int] | None:
    for node in body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        if not first <= line <= (node.end_lineno or node.lineno):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return prefix + node.name, node.lineno
        if isinstance(node, ast.ClassDef):
            return _enclosing(node.body, line, f"{prefix}{node.name}.")
    return None


def _posix(path: str) -> str:
    return path.replace(os.sep, "/")


def _enclosing_in(workspace: Path, relative: str, line: int) -> tuple[str, int] | None:
    file = workspace / relative
    try:
        mtime_ns = file.stat().st_mtime_ns
    except OSError:
        return None
    return _enclosing_cached(str(file), mtime_ns, line)


@functools.lru_cache(maxsize=512)
def _enclosing_cached(path: str, mtime_ns: int, line: int) -> tuple[str, int] | None:
    """Per file version: a test run asks about the same few files many times."""
    try:
        source = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return enclosing_function(source, line)


#: Words of a test's name that say nothing about what it tests.
_STOP_WORDS = frozenset({
    "test", "tests", "testcase", "case", "cases", "check", "checks", "should", "when", "with", "without", "and",
    "the", "for", "from", "into", "not", "that", "returns", "return", "raises", "raise", "error", "errors",
    "works", "basic", "simple", "mixin", "default", "defaults", "none", "empty", "function", "functions",
    "method", "methods", "call", "calls", "value", "values", "type", "types", "args", "kwargs", "self",
})
_WORD_SPLIT = re.compile(r"[^0-9A-Za-z]+|(?<=[a-z0-9])(?=[A-Z])")


def _words(name: str) -> frozenset[str]:
    return frozenset(w.lower() for w in _WORD_SPLIT.split(name) if len(w) >= 3) - _STOP_WORDS


def _test_words(test: str | None) -> frozenset[str]:
    """The words of a test's function and class names (``SeekableTest::test_seek[2]``: seekable, seek)."""
    if not test or "::" not in test:
        return frozenset()
    names = test.split("::")[1:]
    names[-1] = names[-1].split("[", 1)[0]
    return frozenset().union(*map(_words, names))


def _named(qualname: str, words: frozenset[str]) -> bool:
    return bool(words) and bool(_words(qualname) & words)


def _passes_through(outer: Frame, inner: Frame) -> bool:
    """``outer`` only hands the call on to ``inner``'s function: it holds that function in a free variable
    (a decorator's wrapper) or in an attribute of ``self`` (a class used as a decorator, ``curry``)."""
    if outer.code is None or inner.code is None or outer.namespace is None:
        return False
    from .pytest_json_plugin import codes_of  # imports pytest: only reached from a live traceback

    held = [outer.namespace.get(name) for name in outer.code.co_freevars]
    arguments = outer.code.co_varnames[:outer.code.co_argcount]
    try:
        if arguments and arguments[0] == "self":
            held.extend(object.__getattribute__(outer.namespace.get("self"), "__dict__").values())
        return any(inner.code in codes_of(value) for value in held if callable(value))
    except Exception:  # noqa: BLE001 - an odd object: not a wrapper we can see through
        return False


_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While,
             ast.With, ast.AsyncWith, ast.Try)
#: What a name in a statement can hold that is no value the test computed.
_NOT_VALUES = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
#: Builtins that exercise one special method of their argument.
_PROTOCOL = {"len": "__len__", "next": "__next__", "bool": "__bool__", "str": "__str__", "repr": "__repr__",
             "hash": "__hash__", "reversed": "__reversed__", "abs": "__abs__", "format": "__format__"}
#: Builtins that iterate their arguments.
_ITERATING = frozenset({"list", "tuple", "set", "frozenset", "sorted", "sum", "min", "max", "any", "all", "dict",
                        "enumerate", "zip", "map", "filter", "iter"})


def _iterates(called: Any, owner) -> bool:
    """A call that iterates its arguments: a builtin that does, :mod:`itertools`, or a function of the
    workspace's own (``take(5, s)``: a test driving an iterator with a helper of the project)."""
    from .pytest_json_plugin import codes_of

    if any(called is getattr(builtins, name) for name in _ITERATING):
        return True
    if isinstance(called, (type, types.BuiltinFunctionType)) and called.__module__ == "itertools":
        return True
    return not isinstance(called, type) and any(owner.owns_code(code) for code in codes_of(called))


def _statement_candidates(workspace: Path, frame: Frame, test_file: str | None) -> list[FunctionUnderTest]:
    """The workspace functions the failing statement at ``frame`` exercises, most likely first (see the
    module docstring)."""
    from .pytest_json_plugin import (  # imports pytest: only reached from a live traceback
        MISSING, Sides, Workspace, binding, calls_on, code_of, codes_of, comparison_operands, function_at,
        resolve, statement_node,
    )

    statement = statement_node(frame.path, frame.line, compound=True)
    if statement is None:
        return []
    order: list[ast.AST] = [statement]
    if isinstance(statement, (ast.With, ast.AsyncWith)):  # ``with pytest.raises(E): f(x)`` failed on exit:
        order = [*statement.body, *(item.context_expr for item in statement.items)]  # the body is what ran
    elif isinstance(statement, _COMPOUND):
        return []
    namespace = frame.namespace
    owner = Workspace(workspace, workspace / test_file if test_file else None)
    function = function_at(frame.path, frame.line)
    operands = comparison_operands(statement)
    if operands is not None:
        sides = Sides(namespace, function, frame.line, owner)
        order.insert(0, operands[1] if sides.actual_is_right(*operands) else operands[0])
    codes: list[types.CodeType] = []
    constructors: list[types.CodeType] = []

    def calls(node: ast.AST) -> None:
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            called = resolve(call.func, namespace)
            (constructors if isinstance(called, type) else codes).extend(codes_of(called))
            for argument in [*call.args, *(k.value for k in call.keywords)]:  # a function handed over runs
                if isinstance(argument, (ast.Name, ast.Attribute)):  # there: ``pytest.raises(E, f, x)``
                    passed = resolve(argument, namespace)
                    if callable(passed) and not isinstance(passed, type):
                        codes.extend(codes_of(passed))

    def implicit(node: ast.AST) -> None:
        for sub in ast.walk(node):
            used: list[tuple[ast.expr, tuple[str, ...]]] = []
            if isinstance(sub, ast.Call):
                called = resolve(sub.func, namespace)
                special = next((m for n, m in _PROTOCOL.items() if called is getattr(builtins, n)), None)
                if special:
                    used.extend((argument, (special,)) for argument in sub.args)
                elif _iterates(called, owner):
                    used.extend((argument, ("__next__", "__iter__")) for argument in sub.args)
            elif isinstance(sub, ast.Subscript):
                used.append((sub.value, ("__getitem__",)))
            elif isinstance(sub, ast.Compare):
                operands_ = [sub.left, *sub.comparators]
                used.extend((operands_[i + 1], ("__contains__",)) for i, op in enumerate(sub.ops)
                            if isinstance(op, (ast.In, ast.NotIn)))
            elif isinstance(sub, ast.comprehension):
                used.append((sub.iter, ("__next__", "__iter__")))
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and len(sub.args) >= 2 \
                    and sub.func.attr in ("assertIn", "assertNotIn"):
                used.append((sub.args[1], ("__contains__",)))
            for expression, methods in used:
                value = resolve(expression, namespace)
                if isinstance(expression, ast.Call) and isinstance(value, type):
                    cls = value  # ``len(Range(1, 5))``: made on the spot
                elif value is not MISSING and owner.owns_object(value):
                    cls = type(value)
                else:
                    continue
                if not owner.owns_class(cls):
                    continue
                for method in methods:
                    code = code_of(inspect.getattr_static(cls, method, None))
                    if owner.owns_code(code):
                        codes.append(code)
                        break

    # The statement, then what last acted on the values it reads (``name.method(...)`` calls and the
    # assignment that gave the name its value, latest first), then what acted on the values those read...
    queue, seen = [(node, 0) for node in order], {"self", "cls"}
    for node, depth in queue:
        calls(node)
        if depth >= 3:
            continue
        for name in dict.fromkeys(n.id for n in ast.walk(node) if isinstance(n, ast.Name)):
            if name in seen or isinstance(namespace.get(name), _NOT_VALUES):
                continue
            seen.add(name)
            acts = list(calls_on(function, name, frame.line))
            value, line = binding(function, name, frame.line)
            if value is not None:
                acts.append((value, line))
            queue.extend((act, depth + 1) for act, _ in sorted(acts, key=lambda item: -item[1]))
    for node, _ in queue:
        implicit(node)
    found: list[FunctionUnderTest] = []
    for code in [*codes, *constructors]:
        if code is None or not owner.owns_code(code):
            continue
        relative = workspace_file(workspace, code.co_filename)
        enclosing = None if relative is None else _enclosing_in(workspace, relative, code.co_firstlineno)
        if enclosing is not None:
            candidate = FunctionUnderTest(relative, *enclosing)
            if candidate not in found:
                found.append(candidate)
    return found
