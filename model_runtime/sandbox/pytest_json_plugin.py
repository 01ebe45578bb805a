"""editseq's pytest plugin: every test report as one JSON line, written as it happens.

This file runs inside the *user's* interpreter, which may not have editseq
installed, so it is self-contained: the standard library and pytest only, no
editseq imports. :mod:`model_runtime.sandbox.runner` copies it into a temporary
folder, puts that folder on ``PYTHONPATH``, runs it as the entry point and loads
it with ``-p _editseq_results``.

The records go to the runner through an inherited pipe whose file descriptor
is named only in ``EDITSEQ_RESULTS_FD``; the entry point takes the variable out
of the environment and marks the descriptor not inheritable *before pytest
starts*, so neither a conftest, nor the code under test, nor a process they
start finds the channel in its arguments or environment (code running in this
process can still hunt for open descriptors: an in-process harness can always
be lied to, which is why the runner also checks the channel against pytest's
exit status). ``--editseq-json=PATH`` appends to a file instead (for running
the plugin by hand). The entry point imports this file under its plugin name
before pytest does, so assertion rewriting is off for it: PYTEST_DONT_REWRITE.

Lines are appended and flushed one by one rather than written at the end,
because a run that is killed (timeout, cancellation, memory) still has to say
which tests finished and which one was running. Records (``"event"`` key):

``start``
    ``nodeid``: a test is about to run (the last one without a report is the
    one that hung when a run is killed).
``report``
    One phase of a test: ``nodeid``, ``when`` (setup/call/teardown),
    ``outcome`` (pytest's passed/failed/skipped), ``xfail`` (the test was
    expected to fail), ``duration``, and for failures ``crash`` (absolute
    ``path``, 1-based ``line``, ``message``), ``statement`` (the source of the
    statement that raised; for a unittest assertion, the test's line that
    called it), ``comparison`` (``op``, ``left``, ``right`` reprs of the
    failing assert's comparison, from ``pytest_assertrepr_compare``),
    ``values`` (``actual`` and ``expected`` of a failing assertion, plain or
    unittest, with the operands' roles decided: see :func:`failure_values`)
    and ``traceback`` (trimmed).
``collected``
    ``nodeids``: the tests selected to run, after collection.
``collect``
    A collection error (import error, syntax error in a test module): the
    collector's ``nodeid`` with the same failure fields.
``usage_error``
    pytest refused its arguments; ``message`` is pytest's own text. Nothing
    runs after this.
``finished``
    ``exitstatus``: pytest reached its end. Its absence means the process
    died (a signal, a resource limit, ``os._exit`` in a test).

Selection: pytest aborts the whole run (a usage error) when one test id on
its command line does not exist, or names a test in a module that fails to
import. So the sandbox passes *files* on the command line and the wanted ids
in a JSON file (``--editseq-select=PATH``); this plugin keeps the items that
match an id (exactly, as a parametrized variant, as a class's member, or as a
file's or folder's content) and deselects the rest. An id that matches
nothing is then simply absent from ``collected``, and every other test runs.

Run as a script (``python _editseq_results.py ARGS``) it is also the
sandbox's entry point: it brings the loopback interface up (a fresh network
namespace has it down, and tests that serve on ``127.0.0.1`` are common and
harmless), then runs ``pytest.main(ARGS)``. Failing to bring it up is not an
error: outside a namespace the interface is already up, or not ours to touch.

Texts are trimmed here, in the child, so a test that fails with a gigantic
message cannot make the JSON (or the parent's memory) unbounded.

What a failing assertion compared (:func:`failure_values`: which operand is
the actual value, which the expected one, read from the live traceback and
the test's source, never by running anything again) is worked out here too,
and editseq's own pytest plugin imports it from this file: one rule for the
failure report and for the sandbox's results.
"""

from __future__ import annotations

import ast
import builtins
import fcntl
import functools
import inspect
import json
import linecache
import os
import socket
import struct
import sys
import types
from pathlib import PurePosixPath

import pytest

MAX_TEXT = 2_000
MAX_TRACEBACK = 6_000
MAX_STATEMENT_LINES = 12


def pytest_addoption(parser):
    parser.addoption("--editseq-json", default=None, help="append test reports as JSON lines to this file")
    parser.addoption("--editseq-select", default=None, help="JSON list of the test ids to run")


#: The results channel's descriptor, handed over by the entry point (never left in the environment).
CHANNEL_FD = None
RESULTS_FD = "EDITSEQ_RESULTS_FD"


def pytest_configure(config):
    path = config.getoption("editseq_json")
    if CHANNEL_FD is not None:
        config.pluginmanager.register(_Recorder(os.fdopen(CHANNEL_FD, "w", encoding="utf-8")),
                                      "editseq-json-recorder")
    elif path:
        config.pluginmanager.register(_Recorder(open(path, "a", encoding="utf-8")), "editseq-json-recorder")
    select = config.getoption("editseq_select")
    if select:
        with open(select, encoding="utf-8") as file:
            config.pluginmanager.register(_Selector(json.load(file)), "editseq-selector")


def _matches(nodeid, wanted):
    """``wanted`` is a test, a class, a parametrized test's base id, a file, a folder or ``.`` (all)."""
    if nodeid == wanted or wanted == ".":  # "." is the whole suite
        return True
    if "::" in wanted:
        return nodeid.startswith((wanted + "::", wanted + "["))
    return nodeid.startswith((wanted + "::", wanted.rstrip("/") + "/"))


class _Selector:
    def __init__(self, wanted):
        self._wanted = wanted

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        keep, dropped = [], []
        for item in items:
            (keep if any(_matches(item.nodeid, w) for w in self._wanted) else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def trim_text(text, limit=MAX_TEXT):
    """Keep the head and the tail: the exception type is at one end, the detail often at the other."""
    text = str(text)
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"


def safe_repr(value):
    try:
        return trim_text(repr(value))
    except Exception as exc:  # a broken __repr__ must not break the report
        return f"<repr failed: {type(exc).__name__}>"


def statement_at(path, line):
    """The whole statement at ``line`` (a multi-line assert reads better whole), else the line."""
    text = "".join(linecache.getlines(path))
    fallback = linecache.getline(path, line).strip()
    best = _innermost_statement(_parsed(text), line)
    if best is None or (best.end_lineno or best.lineno) - best.lineno >= MAX_STATEMENT_LINES:
        return fallback
    if isinstance(best, _COMPOUND):
        return fallback  # a compound statement: its header line says more than its body
    return trim_text(ast.get_source_segment(text, best) or fallback)


_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While,
             ast.With, ast.AsyncWith, ast.Try)


@functools.lru_cache(maxsize=16)
def _parsed(text):
    """A module's tree, per source text (a run asks about the same test file again and again)."""
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _innermost_statement(tree, line):
    best = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno):
                if best is None or node.lineno >= best.lineno:
                    best = node
    return best


def statement_node(path, line, compound=False):
    """The simple statement (``assert``, an expression, an assignment) at ``line`` of ``path``, or ``None``;
    with ``compound``, also a ``with``, ``if``, ``for``... whose header holds the line."""
    node = _innermost_statement(_parsed("".join(linecache.getlines(path))), line)
    return None if node is None or (isinstance(node, _COMPOUND) and not compound) else node


def function_at(path, line):
    """The innermost ``def`` of ``path`` holding ``line`` (the test, or a helper of the tests), or ``None``."""
    tree = _parsed("".join(linecache.getlines(path)))
    best = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    node.lineno <= line <= (node.end_lineno or node.lineno):
                if best is None or node.lineno >= best.lineno:
                    best = node
    return best


# --------------------------------------------------------------------------- what a failing assertion compared
#
# Shared with editseq's own plugin (model_runtime.pytest_plugin), which imports these: one rule for the
# report and for the sandbox's results.

#: Folders whose files are never the user's code. The same rule as ``failure_report.workspace_file`` and
#: ``failure_report.is_test_file`` (this file cannot import editseq; a test keeps the two in step).
FOREIGN_DIRS = frozenset({
    "site-packages", "dist-packages", ".venv", "venv", ".tox", ".nox", "node_modules", "__pycache__",
})


def is_test_path(relative):
    """pytest's default test modules, ``conftest.py``, and anything under a ``tests/`` folder."""
    parts = PurePosixPath(str(relative).replace(os.sep, "/")).parts
    name = parts[-1] if parts else ""
    return ((name.startswith("test_") and name.endswith(".py")) or name.endswith("_test.py")
            or name == "conftest.py" or "tests" in parts[:-1])


class Workspace:
    """Which files hold the code under test: ``.py`` files inside ``root``, outside library folders, that
    are not test files (nor ``test_file``, the running test's own module, whatever its name)."""

    def __init__(self, root, test_file=None):
        self.root = os.path.realpath(str(root))
        self.test_file = os.path.realpath(str(test_file)) if test_file else None
        self._owned = {}

    def owns(self, filename):
        if not filename:
            return False
        known = self._owned.get(filename)
        if known is None:
            known = self._owned[filename] = self._decide(filename)
        return known

    def _decide(self, filename):
        real = os.path.realpath(filename)
        if real == self.test_file or not real.endswith(".py"):
            return False
        relative = os.path.relpath(real, self.root)
        if relative == os.pardir or relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
            return False
        parts = relative.split(os.sep)
        return not FOREIGN_DIRS.intersection(parts) and not is_test_path(relative)

    def owns_code(self, code):
        return code is not None and self.owns(code.co_filename)

    def owns_class(self, cls):
        name = vars(cls).get("__module__") if isinstance(cls, type) else None
        module = sys.modules.get(name) if isinstance(name, str) else None
        return self.owns(vars(module).get("__file__") if module is not None else None)

    def owns_object(self, value):
        """An object the code under test made: an instance of one of its classes, or one of its generators.
        Decided from types alone: no attribute of ``value`` is read (that could run its ``__getattr__``)."""
        if isinstance(value, types.GeneratorType):
            return self.owns(value.gi_code.co_filename)
        if isinstance(value, types.CoroutineType):
            return self.owns(value.cr_code.co_filename)
        if isinstance(value, types.AsyncGeneratorType):
            return self.owns(value.ag_code.co_filename)
        if isinstance(value, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                              types.MethodType, functools.partial)):
            return False
        return self.owns_class(type(value))


MISSING = object()


def resolve(node, namespace):
    """The object an expression names, without running user code: no calls, no properties, no
    ``__getattr__``. ``Class(...).method`` resolves through the class, which holds the method an
    instance would use; a name missing from ``namespace`` is looked up in the builtins."""
    if isinstance(node, ast.Name):
        value = namespace.get(node.id, MISSING) if namespace is not None else MISSING
        return getattr(builtins, node.id, MISSING) if value is MISSING else value
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Call):
        called = resolve(node.func, namespace)
        return called if isinstance(called, type) else MISSING
    if isinstance(node, ast.Attribute):
        base = resolve(node.value, namespace)
        if base is MISSING:
            return MISSING
        try:
            return inspect.getattr_static(base, node.attr)
        except (AttributeError, TypeError):
            return MISSING
    return MISSING


def codes_of(obj, _depth=0):
    """The code that runs when ``obj`` is called, innermost first: a function, a method (bound, static,
    class); what ``functools.partial`` and ``__wrapped__`` (``functools.wraps``) wrap, then the wrapper;
    a class's ``__init__``; a callable object's ``__call__``, after the one function it holds if it holds
    exactly one (``curry``, a class used as a decorator). Empty for anything else."""
    if _depth > 8 or obj is MISSING or obj is None:
        return []
    if isinstance(obj, type):
        return codes_of(obj.__dict__.get("__init__"), _depth + 1)
    if isinstance(obj, functools.partial):
        return codes_of(obj.func, _depth + 1)
    if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
        return codes_of(obj.__func__, _depth + 1)
    if isinstance(obj, types.FunctionType):
        wrapped = obj.__dict__.get("__wrapped__")
        inner = codes_of(wrapped, _depth + 1) if wrapped is not None and wrapped is not obj else []
        return inner + [obj.__code__]
    if isinstance(obj, (types.ModuleType, types.BuiltinFunctionType, types.BuiltinMethodType)):
        return []
    try:
        call = inspect.getattr_static(type(obj), "__call__")
    except AttributeError:
        return []
    if not isinstance(call, types.FunctionType):
        return []
    try:
        held = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        held = {}
    wrapped = held.get("__wrapped__")
    if wrapped is None:
        functions = [v for v in held.values() if isinstance(v, (types.FunctionType, functools.partial,
                                                                   types.MethodType))]
        wrapped = functions[0] if len(functions) == 1 else None
    inner = codes_of(wrapped, _depth + 1) if wrapped is not None and wrapped is not obj else []
    return inner + [call.__code__]


def code_of(obj):
    """The innermost of :func:`codes_of` (the decorated function, not its wrapper), or ``None``."""
    codes = codes_of(obj)
    return codes[0] if codes else None


def _plain(value, depth=0):
    """Data that no code under test is needed to build: literals and builtin containers of them."""
    kind = type(value)
    if value is None or value is Ellipsis or kind in (bool, int, float, complex, str, bytes, range):
        return True
    if depth >= 3:
        return False
    if kind in (list, tuple, set, frozenset):
        return len(value) <= 256 and all(_plain(item, depth + 1) for item in value)
    if kind is dict:
        return len(value) <= 256 and all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


def binding(function, name, line):
    """The expression that last gave ``name`` its value in ``function`` before ``line`` (an assignment's
    value, a ``for`` loop's iterable, a ``with`` item's context), with its line; ``(None, 0)`` if none."""
    best, best_line = None, 0
    for node in _own_nodes(function):
        value = None
        if getattr(node, "lineno", line) >= line:
            continue
        if isinstance(node, ast.Assign) and any(_binds(t, name) for t in node.targets):
            value = node.value
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value is not None \
                and _binds(node.target, name):
            value = node.value
        elif isinstance(node, (ast.For, ast.AsyncFor)) and _binds(node.target, name):
            value = node.iter
        elif isinstance(node, ast.withitem) and node.optional_vars is not None and _binds(node.optional_vars, name):
            value = node.context_expr
        if value is not None and value.lineno >= best_line:
            best, best_line = value, value.lineno
    return best, best_line


def calls_on(function, name, line):
    """The calls in ``function`` before ``line`` that act on ``name``: ``name.method(...)``, or ``f(name)``
    (``next(it)``, ``take(5, it)``), with their lines, last first."""
    found = [
        (node, node.lineno) for node in _own_nodes(function)
        if isinstance(node, ast.Call) and node.lineno < line and (
            (isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
             and node.func.value.id == name)
            or any(isinstance(a, ast.Name) and a.id == name for a in node.args))
    ]
    return sorted(found, key=lambda item: -item[1])


def _own_nodes(function):
    """The nodes of ``function``'s body, not of the functions, lambdas and classes nested in it."""
    if function is None:
        return
    stack = list(function.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                stack.append(child)


def _binds(target, name):
    if isinstance(target, ast.Name):
        return target.id == name
    if isinstance(target, (ast.Tuple, ast.List)):
        return any(_binds(t, name) for t in target.elts)
    if isinstance(target, ast.Starred):
        return _binds(target.value, name)
    return False


#: A bare name's role when nothing else decides (``assert result == expected``).
_EXPECTED_WORDS = ("expected", "expect", "exp", "want", "wanted", "golden", "reference", "correct", "truth")
_ACTUAL_WORDS = ("actual", "result", "results", "res", "got", "out", "output", "observed", "answer", "computed")


def _named_role(node):
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    name = name.lower().strip("_")
    for role, words in (("expected", _EXPECTED_WORDS), ("actual", _ACTUAL_WORDS)):
        if any(name == w or name.startswith(w + "_") or name.endswith("_" + w) for w in words):
            return role
    return None


class Sides:
    """Which operand of a comparison is the actual value (see :meth:`actual_is_right`).

    ``namespace`` is the asserting frame's names (locals, then globals), ``function`` the ``def`` that
    holds the assertion (to follow a name back to where it was assigned), ``line`` the assertion's line.
    Nothing is called or evaluated: names are looked up, attributes read statically.
    """

    CALLS, HOLDS, OPAQUE = 3, 2, 1

    def __init__(self, namespace, function, line, workspace):
        self.namespace = namespace if namespace is not None else {}
        self.function = function
        self.line = line
        self.workspace = workspace

    def actual_is_right(self, left, right):
        """True when ``right`` is the actual value and ``left`` the expected one; see ``failure_values``."""
        ranks = self.rank(left), self.rank(right)
        if ranks[0] != ranks[1]:
            return ranks[1] > ranks[0]
        roles = _named_role(left), _named_role(right)
        if roles[0] != roles[1]:
            return roles[0] == "expected" or roles[1] == "actual"
        return False

    def rank(self, node):
        """3: calls the code under test (directly, or through a name assigned from such a call); 2: uses
        an object of that code (an instance of one of its classes, one of its generators); 1: anything
        else we cannot see through; 0: a constant (literals, and builtins applied to data)."""
        flags = self._scan(node, frozenset(), 0, True)
        return max(flags) if flags else 0

    def _scan(self, node, bound, depth, top):
        if isinstance(node, ast.Constant) or isinstance(node, ast.Lambda):
            return set()
        if isinstance(node, ast.Name):
            return set() if node.id in bound else self._name(node.id, depth)
        if isinstance(node, ast.Attribute):
            value = resolve(node, self.namespace)
            base = self._scan(node.value, bound, depth, False)
            if value is MISSING:
                return base | {self.OPAQUE}
            return (base - {self.OPAQUE}) | self._value(value)
        if isinstance(node, ast.Call):
            return self._call(node, bound, depth, top)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            flags, inner = set(), set(bound)
            for generator in node.generators:
                flags |= self._scan(generator.iter, frozenset(inner), depth, False)
                inner.update(n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name))
                for condition in generator.ifs:
                    flags |= self._scan(condition, frozenset(inner), depth, False)
            parts = (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,)
            for part in parts:
                flags |= self._scan(part, frozenset(inner), depth, False)
            return flags
        flags = set()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                flags |= self._scan(child, bound, depth, False)
        return flags

    def _call(self, node, bound, depth, top):
        flags = set()
        callee = resolve(node.func, self.namespace)
        if callee is MISSING:
            flags.add(self.OPAQUE)
        elif isinstance(callee, type):
            if not top and self.workspace.owns_class(callee):
                flags.add(self.CALLS)  # ``list(Bucket(...))``: the class is exercised; a whole ``Point(1, 2)``
                # operand is a value built to compare with
        elif any(self.workspace.owns_code(code) for code in codes_of(callee)):
            flags.add(self.CALLS)
        if isinstance(node.func, ast.Attribute):
            flags |= self._scan(node.func.value, bound, depth, False) - ({self.OPAQUE} if callee is not MISSING
                                                                         else set())
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            flags |= self._scan(argument, bound, depth, False)
        return flags

    def _name(self, name, depth):
        flags = set()
        if depth < 3:
            value, _ = binding(self.function, name, self.line)
            if value is not None and self.CALLS in self._scan(value, frozenset(), depth + 1, True):
                flags.add(self.CALLS)
        found = resolve(ast.Name(name, ast.Load()), self.namespace)
        return flags | ({self.OPAQUE} if found is MISSING else self._value(found))

    def _value(self, value):
        if isinstance(value, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                              types.MethodType, functools.partial)):
            return set()  # a callable named as a value: neither side's mark
        if self.workspace.owns_object(value):
            return {self.HOLDS}
        return set() if _plain(value) else {self.OPAQUE}


def comparison_operands(statement):
    """The two operands of the comparison a statement asserts: ``assert a == b`` (one comparison, one
    operator), ``self.assertX(a, b)``; ``None`` otherwise."""
    if isinstance(statement, ast.Assert) and isinstance(statement.test, ast.Compare) \
            and len(statement.test.ops) == 1:
        return statement.test.left, statement.test.comparators[0]
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        call = statement.value
        if isinstance(call.func, ast.Attribute) and call.func.attr in UNITTEST_OPERATORS:
            return _unittest_operands(call, ())
    return None


#: unittest assertions of two values, as the operator they check (``assertEqual(a, b)``: ``a == b``).
UNITTEST_OPERATORS = {
    "assertEqual": "==", "assertEquals": "==", "assertListEqual": "==", "assertTupleEqual": "==",
    "assertDictEqual": "==", "assertSetEqual": "==", "assertSequenceEqual": "==", "assertMultiLineEqual": "==",
    "assertCountEqual": "==", "assertAlmostEqual": "==", "assertAlmostEquals": "==", "assertIs": "is",
    "assertNotEqual": "!=", "assertNotEquals": "!=", "assertNotAlmostEqual": "!=", "assertIsNot": "is not",
    "assertIn": "in", "assertNotIn": "not in", "assertGreater": ">", "assertGreaterEqual": ">=",
    "assertLess": "<", "assertLessEqual": "<=",
}
#: unittest assertions of one value, and what that value should have been.
UNITTEST_EXPECTED = {"assertTrue": "True", "assertFalse": "False", "assertIsNone": "None",
                     "assertIsNotNone": "not None"}

#: An operator read from the actual value's side when the actual value is the right operand.
_MIRRORED = {"==": "==", "!=": "!=", "is": "is", "is not": "is not", "<": ">", ">": "<", "<=": ">=",
             ">=": "<=", "in": "containing", "not in": "not containing"}
_OPERATORS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
              ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def phrase(op, left, right, actual_is_right):
    """``(actual, expected)`` for ``left op right``: the expected value's repr for ``==`` and ``is``, else
    the condition the actual value failed (``!= 2``, ``< 10``, ``in [1, 2]``, ``containing 3``)."""
    actual, other = (right, left) if actual_is_right else (left, right)
    shown = _MIRRORED.get(op, op) if actual_is_right else op
    return actual, other if shown in ("==", "is") else f"{shown} {other}"


def failure_values(tb, comparison, workspace):
    """What a failing assertion compared, read from the live traceback ``tb``; ``{}`` when it shows none.

    Returns ``actual`` and ``expected`` (reprs; ``expected`` as :func:`phrase` words it) and, for a
    unittest assertion, ``statement`` (the test's line that called it: the line that raised is
    unittest's own). ``comparison`` is ``(op, left, right)``, the reprs pytest's assertion rewriting
    handed to ``pytest_assertrepr_compare`` for a plain ``assert``; a unittest assertion's values are
    read from its frame's arguments (``first``/``second``, ``member``/``container``, ``expr``...).
    Nothing of the test or the code runs again; only the values' ``repr``.

    **Roles** (:meth:`Sides.actual_is_right`): whatever the order of the operands, the actual value is
    the one that calls the code under test (a function or method defined in the workspace outside the
    tests, directly, through ``functools.partial`` or a decorator, or through a name assigned from such a
    call earlier in the test; a constructor call that is the whole operand, ``Point(2, 0)``, is a value
    built to compare with); failing that, the one that uses an object of that code (an instance of one
    of its classes, one of its generators, looked up in the live frame); failing that, the one that is
    not a constant (literals, builtins applied to them, names holding plain data); failing that, a bare
    name says it (``expected``, ``want``... against ``result``, ``actual``, ``got``...). When nothing
    decides, the conventional ``assert actual == expected`` (``assertEqual(actual, expected)``) holds:
    the left operand is the actual value.
    """
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    if not frames:
        return {}
    found = _unittest_values(frames, workspace)
    if found or comparison is None:
        return found
    frame, line = frames[-1]
    op, left, right = comparison
    path = frame.f_code.co_filename
    operands = _compared(statement_node(path, line), op, left, right)
    right_is_actual = operands is not None and _sides(frame, path, line, workspace).actual_is_right(*operands)
    actual, expected = phrase(op, left, right, right_is_actual)
    return {"actual": actual, "expected": expected}


def _sides(frame, path, line, workspace):
    namespace = _Namespace(frame)
    return Sides(namespace, function_at(path, line), line, workspace)


class _Namespace:
    """A frame's names, locals first (a ``get`` is all ``Sides`` needs)."""

    def __init__(self, frame):
        self._maps = (frame.f_locals, frame.f_globals)

    def get(self, name, default=None):
        for names in self._maps:
            if name in names:
                return names[name]
        return default


def _compared(statement, op, left, right):
    """The operand nodes of the comparison ``left op right`` inside the assert ``statement``."""
    if not isinstance(statement, ast.Assert):
        return None
    pairs = []
    for node in ast.walk(statement.test):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            pairs.extend((operands[i], operands[i + 1]) for i, o in enumerate(node.ops)
                         if _OPERATORS.get(type(o)) == op)
    if len(pairs) > 1:  # ``a == 1 and b == 2``: the literal operands say which one failed
        pairs = [p for p in pairs if _literal_fits(p[0], left) and _literal_fits(p[1], right)] or pairs[:1]
    return pairs[0] if pairs else None


def _literal_fits(node, shown):
    try:
        return safe_repr(ast.literal_eval(node)) == shown
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return True  # not a literal: cannot tell against it


def _unittest_values(frames, workspace):
    """A failing ``self.assertX(...)``: the frames at the end of the traceback are unittest's (their
    module sets ``__unittest``); the frame before them called the assertion."""
    first = len(frames)
    while first > 0 and frames[first - 1][0].f_globals.get("__unittest"):
        first -= 1
    if first in (0, len(frames)):
        return {}
    caller, line = frames[first - 1]
    method = next((f for f, _ in frames[first:] if f.f_code.co_name in UNITTEST_OPERATORS
                   or f.f_code.co_name in UNITTEST_EXPECTED), None)
    path = caller.f_code.co_filename
    found = {"statement": statement_at(path, line)}
    if method is None:  # self.fail(), assertRaises: the statement is all there is
        return found
    name, code, local = method.f_code.co_name, method.f_code, method.f_locals
    params = code.co_varnames[1:code.co_argcount]
    if name in UNITTEST_EXPECTED:
        if params and params[0] in local:
            found.update(actual=safe_repr(local[params[0]]), expected=UNITTEST_EXPECTED[name])
        return found
    names = ("first_seq", "second_seq") if name == "assertCountEqual" and "first_seq" in local else params[:2]
    if len(names) < 2 or not all(n in local for n in names):
        return found
    left, right = safe_repr(local[names[0]]), safe_repr(local[names[1]])
    operands = None
    statement = statement_node(path, line)
    for node in ast.walk(statement) if statement is not None else ():
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (name, name + "s"):
            operands = _unittest_operands(node, params[:2])
            break
    right_is_actual = operands is not None and _sides(caller, path, line, workspace).actual_is_right(*operands)
    actual, expected = phrase(UNITTEST_OPERATORS[name], left, right, right_is_actual)
    found.update(actual=actual, expected=expected)
    return found


def _unittest_operands(call, params):
    """The nodes passed as the first two parameters (positionally or by name), or ``None``."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    given = list(call.args[:2])
    keywords = {k.arg: k.value for k in call.keywords}
    for name in params[len(given):2]:
        if name not in keywords:
            return None
        given.append(keywords[name])
    return tuple(given) if len(given) == 2 else None


def crash_of(report):
    """Where the failure happened: pytest's crash entry, or the last ``E`` line of a text repr."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return {"path": str(crash.path), "line": crash.lineno, "message": trim_text(crash.message)}
    lines = [l[1:].strip() for l in report.longreprtext.splitlines() if l.startswith("E ")]
    return {"path": None, "line": None, "message": trim_text(lines[-1] if lines else report.longreprtext)}


def _failure_fields(report):
    crash = crash_of(report)
    fields = {"crash": crash, "traceback": trim_text(report.longreprtext, MAX_TRACEBACK)}
    if crash["path"] and crash["line"]:
        fields["statement"] = statement_at(crash["path"], crash["line"])
    return fields


class _Recorder:
    def __init__(self, out):
        self._out = out
        self._comparison = None
        self._values = None  # (report, failure_values(...)) of the report being made

    def _write(self, record):
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def pytest_runtest_logstart(self, nodeid, location):
        self._comparison = None
        self._write({"event": "start", "nodeid": nodeid})

    def pytest_assertrepr_compare(self, config, op, left, right):
        """Remember the failing comparison; return None so pytest's own explanation is unchanged."""
        self._comparison = {"op": op, "left": safe_repr(left), "right": safe_repr(right)}
        return None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """The compared values need the live traceback, which the report no longer has."""
        outcome = yield
        report = outcome.get_result()
        excinfo = call.excinfo
        if report.failed and excinfo is not None and isinstance(excinfo.value, AssertionError):
            comparison = self._comparison
            recorded = None if comparison is None else (comparison["op"], comparison["left"], comparison["right"])
            try:
                workspace = Workspace(getattr(item.config, "rootpath", None) or item.config.rootdir,
                                      getattr(item, "path", None) or getattr(item, "fspath", None))
                values = failure_values(excinfo.tb, recorded, workspace)
            except Exception:  # an odd frame must not cost the run its results
                values = {}
            self._values = (report, values)

    def pytest_runtest_logreport(self, report):
        record = {
            "event": "report",
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "xfail": hasattr(report, "wasxfail"),
            "duration": report.duration,
        }
        if report.failed:
            record.update(_failure_fields(report))
            if report.when == "call" and self._comparison:
                record["comparison"] = self._comparison
            values = self._values[1] if self._values is not None and self._values[0] is report else {}
            if values.get("statement"):
                record["statement"] = values["statement"]
            record["values"] = {k: values[k] for k in ("actual", "expected") if values.get(k) is not None}
        self._values = None
        self._write(record)

    def pytest_collectreport(self, report):
        if report.failed:
            self._write({"event": "collect", "nodeid": report.nodeid, **_failure_fields(report)})

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collection(self, session):
        outcome = yield
        if not outcome.excinfo:
            self._write({"event": "collected", "nodeids": [item.nodeid for item in session.items]})
        error = outcome.excinfo[1] if outcome.excinfo else None
        if isinstance(error, pytest.UsageError):
            self._write({"event": "usage_error", "message": trim_text("\n".join(map(str, error.args)))})

    def pytest_sessionfinish(self, session, exitstatus):
        self._write({"event": "finished", "exitstatus": int(exitstatus)})

    def pytest_unconfigure(self, config):
        self._out.close()


def _loopback_up():
    """``ip link set lo up`` in a few syscalls (SIOCSIFFLAGS with IFF_UP|IFF_LOOPBACK|IFF_RUNNING)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock, 0x8914, struct.pack("16sH14x", b"lo", 0x1 | 0x8 | 0x40))
    except OSError:
        pass


def _take_channel():
    """The results descriptor out of the environment, not inherited by anything the tests start."""
    fd = os.environ.pop(RESULTS_FD, None)
    if fd is None or not fd.isdigit():
        return None
    os.set_inheritable(int(fd), False)
    return int(fd)


if __name__ == "__main__":
    _loopback_up()
    import _editseq_results  # the module ``-p`` loads: this file again, under its plugin name

    _editseq_results.CHANNEL_FD = _take_channel()
    sys.exit(pytest.main(sys.argv[1:]))
