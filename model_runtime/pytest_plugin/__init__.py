"""editseq's pytest plugin: a failure report for the editor, and headless refinement of what failed.

``--editseq`` (or ``editseq = true`` in the ini options) writes the failure
report (:mod:`model_runtime.sandbox.failure_report`) at the end of every run, for the
language server to turn into diagnostics. ``--editseq-refine`` also runs the
refinement loop on the function under test of each failing test after the
run (:mod:`model_runtime.pytest_plugin.refine`), and ``--editseq-apply`` writes the
verified fixes. The model runs in-process, or behind an OpenAI-compatible
endpoint (vLLM) with ``--editseq-backend openai --editseq-endpoint URL``
(or the ``editseq_backend`` / ``editseq_endpoint`` ini options).

pytest imports this module in every run once the package is installed, even
when nothing asks for it, so it imports only pytest, the standard library and
:mod:`model_runtime.defaults` at load time; everything else loads when the plugin is switched on, and
torch only when refinement starts.

Processes: the details of a failure (the function under test, the compared
values) need the live traceback, so they are worked out where the test ran —
an xdist worker — and travel to the controller as a plain ``editseq`` dict on
the report (pytest serialises a report's extra attributes). Only the
controller (no ``workerinput``) writes the report and refines, so an xdist
run writes one report, not one per worker.

The refinement sandbox runs the user's pytest again, with this plugin
installed; the sandbox sets :data:`SANDBOX_ENV`
(:data:`model_runtime.sandbox.runner.SANDBOX_FLAG`) in every run, which
switches it off there, so a sandboxed run neither overwrites the report nor
starts a refinement of its own.

Holds: this module (pytest's hooks, kept light), :mod:`.report` (pytest's
reports to the failure report file) and :mod:`.refine` (``--editseq-refine``
through the run seam). May import: ``run``, ``sandbox`` (the failure report),
``prompting`` (feedback wording), ``defaults``, ``errors``.
"""

from __future__ import annotations

import inspect
import os
from collections import ChainMap
from pathlib import Path

import pytest

from model_runtime import defaults

#: The sandbox's flag (a literal: importing the sandbox here would slow every pytest run down).
SANDBOX_ENV = "EDITSEQ_SANDBOX"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("editseq", "editseq: failure report for the editor, test-driven refinement")
    group.addoption("--editseq", action="store_true", default=False,
                    help="write the failure report to <rootdir>/.editseq/pytest-report.json")
    group.addoption("--editseq-refine", action="store_true", default=False,
                    help="after the run, refine the function under test of each failing test (implies --editseq)")
    group.addoption("--editseq-apply", action="store_true", default=False,
                    help="with --editseq-refine: write each verified fix (only if the file is unchanged)")
    group.addoption("--editseq-model", default=None, metavar="MODEL",
                    help="model folder or hub id (transformers), or the served model name (openai), for "
                         "--editseq-refine (default: the editseq_model ini option, else the embedded model)")
    group.addoption("--editseq-backend", default=None, choices=defaults.BACKENDS,
                    help="run the model in-process (transformers) or through an OpenAI-compatible endpoint "
                         "such as vLLM's (openai) (default: the editseq_backend ini option, else transformers)")
    group.addoption("--editseq-endpoint", default=None, metavar="URL",
                    help="base URL of the OpenAI-compatible server (openai backend; default: the "
                         f"editseq_endpoint ini option, else {defaults.ENDPOINT})")
    group.addoption("--editseq-rounds", type=int, default=defaults.ROUNDS, metavar="N",
                    help=f"repair rounds after round 0 ({defaults.ROUNDS})")
    group.addoption("--editseq-candidates", type=int, default=defaults.CANDIDATES, metavar="K",
                    help=f"candidates per round ({defaults.CANDIDATES})")
    group.addoption("--editseq-strategy", default=defaults.STRATEGY, choices=defaults.STRATEGIES,
                    help=f"how repair rounds find candidates ({defaults.STRATEGY}: follow the model)")
    group.addoption("--editseq-verify", default=defaults.VERIFY, choices=defaults.VERIFY_SCOPES,
                    help="besides the failing tests, what must still pass: the tests that passed in the same "
                         f"files (files), the suite (suite) or nothing more (failing) ({defaults.VERIFY})")
    group.addoption("--editseq-format", default=defaults.PROMPT_FORMAT, choices=defaults.WRITE_FORMATS,
                    help=f"the prompt format the model speaks: lintseq or chat ({defaults.PROMPT_FORMAT}: "
                         "read it off the model)")
    group.addoption("--editseq-timeout", type=float, default=None, metavar="SECONDS",
                    help="wall-clock budget per refined function, which also bounds each test run")
    group.addoption("--editseq-max-new-tokens", type=int, default=defaults.MAX_NEW_TOKENS, metavar="N")
    group.addoption("--editseq-temperature", type=float, default=defaults.TEMPERATURE, help="0 means greedy (default)")
    group.addoption("--editseq-device", default=defaults.DEVICE, help="auto (cuda, then mps, then cpu) or a torch device")
    parser.addini("editseq", type="bool", default=False, help="write the editseq failure report on every run")
    parser.addini("editseq_model", default="", help="model for --editseq-refine")
    parser.addini("editseq_backend", default="", help="backend for --editseq-refine: transformers or openai")
    parser.addini("editseq_endpoint", default="", help="OpenAI-compatible server for --editseq-backend openai")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Undo what ``--editseq-model /path`` (a value after a space) did to the rootdir.

    pytest finds the rootdir and the ini file before it loads installed
    plugins, so it does not know our options yet and takes a path given as
    their value for a test path: the rootdir (and the report with it) moved to
    the model's folder. Here, with our options known, the rootdir is worked
    out again from the real test paths. Where only the rootdir differs it is
    put back; where pytest found no ini file but the project has one that
    holds nothing pytest reads this early (``addopts``, ``pythonpath``, ...),
    that file is taken, as pytest would have; where the ini file differs
    otherwise (the options and plugins pytest already read from it are the
    wrong ones) the run stops with the fix to type
    (``--editseq-model=/path``), before any test or report is touched.
    """
    values = _spaced_values(args)
    if not values:
        return
    from _pytest.config.findpaths import determine_setup

    ns = early_config.known_args_namespace
    wanted = {"inifile": ns.inifilename, "override_ini": getattr(ns, "override_ini", None), "args": ns.file_or_dir,
              "rootdir_cmd_arg": ns.rootdir or None, "invocation_dir": early_config.invocation_params.dir}
    accepted = inspect.signature(determine_setup).parameters
    rootpath, inipath, inicfg = determine_setup(**{k: v for k, v in wanted.items() if k in accepted})[:3]
    if (rootpath, inipath) == (early_config.rootpath, early_config.inipath):
        return
    spelled = " ".join(f"{option}={value}" for option, value in values)
    if early_config.inipath is None and inipath is not None and _adoptable(early_config, inicfg):
        # pytest read no configuration file; the right one only holds options read later (getini):
        # take it, as pytest would have.
        early_config._inipath, early_config._inicfg = inipath, inicfg  # noqa: SLF001 - see the docstring
        early_config._inicache.clear()  # noqa: SLF001
        parser.extra_info["inifile"] = str(inipath)
    elif inipath != early_config.inipath or not hasattr(early_config, "_rootpath"):
        raise pytest.UsageError(
            f"editseq: pytest read the value of {' '.join(o for o, _ in values)} as a test path before editseq's "
            f"options were known, and took its configuration from {early_config.inipath or 'no file'} instead of "
            f"{inipath or 'none'}; write {spelled}")
    if ns.confcutdir == str(early_config.rootpath):  # pytest derived it from the wrong rootdir
        ns.confcutdir = str(early_config.inipath.parent if early_config.inipath else rootpath)
    early_config._rootpath = rootpath  # noqa: SLF001 - no public way to correct it; checked above
    parser.extra_info["rootdir"] = str(rootpath)


#: What pytest takes from the ini file before plugins load: a file holding one of these cannot be
#: adopted afterwards (the run stops with the ``=`` spelling to type instead).
_READ_EARLY = ("addopts", "pythonpath", "required_plugins", "minversion")


def _adoptable(config: pytest.Config, inicfg) -> bool:
    return all(hasattr(config, name) for name in ("_inipath", "_inicfg", "_inicache")) and not any(
        key in inicfg for key in _READ_EARLY)


def _spaced_values(args: list[str]) -> list[tuple[str, str]]:
    """``(option, value)`` for each of our options given as ``--option value`` (two words)."""
    found = []
    for word, value in zip(args, args[1:]):
        if word in _VALUED and not value.startswith("-"):
            found.append((word, value))
    return found


#: Our options that take a value (every ``--editseq-*`` option but the switches).
_VALUED = frozenset({
    "--editseq-model", "--editseq-backend", "--editseq-endpoint", "--editseq-rounds", "--editseq-candidates",
    "--editseq-strategy", "--editseq-verify", "--editseq-format", "--editseq-timeout", "--editseq-max-new-tokens",
    "--editseq-temperature", "--editseq-device",
})


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(SANDBOX_ENV) or not _enabled(config):
        return
    config.pluginmanager.register(_Details(config.rootpath), "editseq-details")
    if hasattr(config, "workerinput"):  # an xdist worker: the controller reports
        return
    settings = None
    if config.getoption("editseq_refine"):
        from .refine import settings_from_config

        settings = settings_from_config(config)  # bad options fail now, not after the tests
    config.pluginmanager.register(_Reporter(config.rootpath, settings), "editseq-reporter")


def _enabled(config: pytest.Config) -> bool:
    if config.getoption("editseq_apply") and not config.getoption("editseq_refine"):
        raise pytest.UsageError("--editseq-apply needs --editseq-refine")
    return bool(config.getoption("editseq") or config.getoption("editseq_refine") or config.getini("editseq"))


class _Details:
    """In the process that runs the tests: attaches what only the live failure shows to its report."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._comparison: tuple[str, str, str] | None = None

    def pytest_runtest_logstart(self) -> None:
        self._comparison = None

    def pytest_assertrepr_compare(self, op: str, left: object, right: object) -> None:
        """Remember a failing comparison (any operator); returning None leaves pytest's explanation alone."""
        from model_runtime.sandbox.pytest_json_plugin import safe_repr

        self._comparison = (op, safe_repr(left), safe_repr(right))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if report.failed and call.excinfo is not None:
            report.editseq = _details(self._root, item, call.excinfo, self._comparison)
        return report


def _details(root: Path, item: pytest.Item, excinfo: pytest.ExceptionInfo,
             comparison: tuple[str, str, str] | None) -> dict:
    """The function under test and the compared values, as plain data that survives xdist.

    Read from the raw traceback (``excinfo.tb``), not pytest's, which a plugin or an older pytest may
    have pruned (of unittest's frames, where a unittest assertion's values are).
    """
    from model_runtime.sandbox.pytest_json_plugin import Workspace, failure_values, statement_at
    from model_runtime.sandbox.failure_report import Frame, function_under_test, workspace_file

    frames = []
    tb = excinfo.tb
    while tb is not None:
        frame = tb.tb_frame
        frames.append(Frame(frame.f_code.co_filename, tb.tb_lineno, ChainMap(frame.f_locals, frame.f_globals),
                            frame.f_code))
        tb = tb.tb_next
    target = function_under_test(root, frames, test=item.nodeid)
    values = {}
    if isinstance(excinfo.value, AssertionError):
        try:
            values = failure_values(excinfo.tb, comparison, Workspace(root, item.path))
        except Exception:  # an odd frame must not cost the run its report  # noqa: BLE001
            values = {}
    # The user's line, not a library's: the feedback is about code the model can change.
    workspace = root.resolve()
    ours = [f for f in frames if workspace_file(workspace, f.path) is not None] or frames[-1:]
    return {
        "target": None if target is None else [target.path, target.function, target.line],
        "statement": values.get("statement") or (statement_at(ours[-1].path, ours[-1].line) if ours else ""),
        "actual": values.get("actual"),
        "expected": values.get("expected"),
    }


class _Reporter:
    """In the controller: gathers every report, writes the failure report, then refines if asked."""

    def __init__(self, root: Path, settings) -> None:
        self._root = root
        self._settings = settings
        self._failures: dict = {}
        self._passed: list[str] = []
        self._ran: set[str] = set()
        self._run = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._ran.add(report.nodeid)
        if report.failed and report.nodeid not in self._failures:
            from .report import failure_of

            self._failures[report.nodeid] = failure_of(self._root, report)
        elif report.when == "call" and report.passed:
            self._passed.append(report.nodeid)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and report.nodeid not in self._failures:
            from .report import failure_of

            self._failures[report.nodeid] = failure_of(self._root, report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from model_runtime.sandbox.failure_report import FailureReport
        from .report import save

        green = [node for node in dict.fromkeys(self._passed) if node not in self._failures]
        self._run = FailureReport.new(self._root, self._failures.values(), green)
        save(self._root, self._run, self._ran, session.config)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """Refine what failed in *this* run (the file may also hold failures of tests not run now)."""
        if self._settings is not None and self._run is not None:
            from .refine import refine_report

            refine_report(self._root, self._run, self._settings, terminalreporter)
