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
    statement that raised), ``comparison`` (``op``, ``left``, ``right`` reprs
    of the failing assert's comparison, from ``pytest_assertrepr_compare``)
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
"""

from __future__ import annotations

import ast
import fcntl
import json
import linecache
import os
import socket
import struct
import sys

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
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return fallback
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno):
            if best is None or node.lineno >= best.lineno:
                best = node
    if best is None or (best.end_lineno or best.lineno) - best.lineno >= MAX_STATEMENT_LINES:
        return fallback
    if isinstance(best, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For,
                         ast.While, ast.With, ast.Try)):
        return fallback  # a compound statement: its header line says more than its body
    return trim_text(ast.get_source_segment(text, best) or fallback)


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
