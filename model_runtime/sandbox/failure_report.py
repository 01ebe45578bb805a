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
(:func:`function_under_test`): the innermost frame inside the workspace that
is not in a test file is the code that went wrong (an exception raised in a
helper called by the function, two calls down, still names the helper: that
is the line that raised). A plain ``assert f(x) == y`` has no such frame — the
test's own frame is the innermost one — so the calls in the failing
statement are resolved in that frame's namespace (``f``, ``obj.method``,
``Class().method``, ``module.f``) to the first one defined in a workspace
file that is not a test file. Either way the frame or function is mapped to
the qualname of its enclosing top-level function or method with :mod:`ast`
(``f``, ``Class.method``, ``Outer.Inner.method``); a nested function maps to
the function that contains it, because that is what can be refined.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import os
import re
import stat
import tempfile
import textwrap
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
    """One traceback entry: a file, a 1-based line and, from a live traceback, the frame's names."""

    path: str
    line: int
    namespace: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


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


def function_under_test(root: str | os.PathLike[str], frames: Sequence[Frame]) -> FunctionUnderTest | None:
    """The function a failure points at (see the module docstring); ``frames`` run outermost first."""
    workspace = Path(root).resolve()
    for frame in reversed(frames):
        relative = workspace_file(workspace, frame.path)
        found = None if relative is None or is_test_file(relative) else _enclosing_in(workspace, relative, frame.line)
        if found is not None:
            return FunctionUnderTest(relative, found[0], frame.line)
    for frame in reversed(frames):
        if frame.namespace is not None and workspace_file(workspace, frame.path) is not None:
            found = _called_function(workspace, frame)
            if found is not None:
                return found
    return None


def frames_in_text(traceback: str) -> list[Frame]:
    """The ``path:line:`` locations of a pytest traceback as text (e.g. a sandbox ``CaseResult``)."""
    return [Frame(m["path"], int(m["line"])) for m in _FRAME_LINE.finditer(traceback)]


def target_of_case(root: str | os.PathLike[str], case) -> FunctionUnderTest | None:
    """:func:`function_under_test` for a :class:`~model_runtime.sandbox.runner.CaseResult`.

    The sandbox keeps only text, so the statement's calls cannot be resolved:
    this finds a target only when the traceback passes through workspace code
    outside the tests (an exception, not a bare ``assert f(x) == y``).
    """
    frames = frames_in_text(case.traceback)
    if case.file and case.line:
        frames.append(Frame(case.file, case.line))
    absolute = [Frame(str(Path(root) / f.path), f.line) for f in frames]
    return function_under_test(root, absolute)


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


def _called_function(workspace: Path, frame: Frame) -> FunctionUnderTest | None:
    """The first call in the frame's failing statement that resolves to a workspace function."""
    from .pytest_json_plugin import statement_at  # imports pytest: only reached from a live traceback

    try:
        statement = ast.parse(textwrap.dedent(statement_at(frame.path, frame.line)))
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(statement):
        if not isinstance(node, ast.Call):
            continue
        code = _code_of(_resolve(node.func, frame.namespace))
        relative = None if code is None else workspace_file(workspace, code.co_filename)
        if relative is None or is_test_file(relative):
            continue
        found = _enclosing_in(workspace, relative, code.co_firstlineno)
        if found is not None:
            return FunctionUnderTest(relative, *found)
    return None


def _resolve(node: ast.expr, namespace: Mapping[str, Any]) -> Any:
    """The object an expression names, without running user code: no calls, no properties, no ``__getattr__``.

    ``Class(...).method`` resolves through the class, which holds the method
    an instance would use.
    """
    if isinstance(node, ast.Name):
        return namespace.get(node.id, _MISSING)
    if isinstance(node, ast.Call):
        called = _resolve(node.func, namespace)
        return called if isinstance(called, type) else _MISSING
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        if base is _MISSING:
            return _MISSING
        try:
            return inspect.getattr_static(base, node.attr)
        except AttributeError:
            return _MISSING
    return _MISSING


def _code_of(obj: Any) -> types.CodeType | None:
    """The code object behind a function, method, static/class method, decorated function or class."""
    if isinstance(obj, type):
        obj = obj.__dict__.get("__init__")
    if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
        obj = obj.__func__
    while isinstance(obj, types.FunctionType) and isinstance(obj.__dict__.get("__wrapped__"), types.FunctionType):
        obj = obj.__dict__["__wrapped__"]  # functools.wraps: the decorated function is the one to fix
    return obj.__code__ if isinstance(obj, types.FunctionType) else None
