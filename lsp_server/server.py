"""The editseq language server: state, settings, runs and the wiring of every LSP feature.

Threads: the asyncio event loop answers every request and notification and
never waits on the model or the tests; the model loads in its own worker
(:mod:`.model_host`); each run (write or refine) is one call into the engine
on a small run pool (:mod:`.runs`), and its progress comes back to the loop
with ``call_soon_threadsafe``. A run is shared: the resolve of a code action,
and the command it falls back to when it takes longer than ``resolveTimeout``,
attach to the same run rather than starting another.

Staleness: a finished run (an :class:`~.runs.Outcome`) remembers the document
version and text it started from. Its steps are offered only while the
document still has that text (an undo back to it re-pins them to the new
version); any other edit drops them. The check is repeated when an edit is
handed out, so no client ever gets an edit computed on another text.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from model_runtime import __version__
from model_runtime.code_map import FunctionSpan, functions_at

from .diagnostics import report_diagnostics
from .edits import prefix_title, prefix_workspace_edit
from .model_host import STATUS_METHOD, ModelHost, ModelUnavailable
from .protocol import EditseqProtocol
from .runs import Outcome, RunRequest, execute, test_ids_from_command
from .settings import Settings, merge_settings, pyproject_settings

__all__ = ["EditseqServer", "build_server"]

log = logging.getLogger(__name__)

WRITE_KIND = "refactor.rewrite.editseq"
FIX_KIND = "quickfix.editseq"
COMMANDS = {"write": "editseq.write", "refine": "editseq.refine", "fix": "editseq.refine"}
APPLY_COMMAND = "editseq.apply"


class RunFailed(Exception):
    """A run could not start or ended in an error; the message is for the user."""


class _Run:
    """A run in flight: its cancel event, its future on the loop, and who listens to its progress."""

    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.cancel = threading.Event()
        self.future: asyncio.Future | None = None
        self.listeners: list = []
        self.last = ""

    def say(self, message: str) -> None:
        self.last = message
        for listener in list(self.listeners):
            listener(message)


class EditseqServer(LanguageServer):
    """pygls' server plus editseq's state (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("editseq", __version__, protocol_cls=EditseqProtocol,
                         text_document_sync_kind=t.TextDocumentSyncKind.Incremental)
        self.settings = Settings()
        self._sources: dict[str, Any] = {}
        self._pyproject_problems: list[str] = []
        self.host = ModelHost(self._status_from_thread)
        self.run_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="editseq-run")
        self.runs: dict[tuple, _Run] = {}
        self.outcomes: dict[str, list[Outcome]] = {}
        self.report = None
        self.published: set[str] = set()
        self._report_mtime: float | None = None
        self._poller: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- small helpers ---------------------------------------------------------------------

    @property
    def root(self) -> Path | None:
        root = self.workspace.root_path
        return Path(root) if root else None

    @property
    def encoding(self) -> str:
        encoding = self.workspace.position_encoding
        return getattr(encoding, "value", encoding) or "utf-16"

    def status(self, state: str, message: str = "") -> None:
        self.protocol.notify(STATUS_METHOD, {"state": state, "message": message})
        if state == "error":
            self.window_show_message(t.ShowMessageParams(type=t.MessageType.Error, message=message))

    def _status_from_thread(self, state: str, message: str) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.status, state, message)

    def warn(self, message: str) -> None:
        self.window_show_message(t.ShowMessageParams(type=t.MessageType.Warning, message=message))

    def open_document(self, uri: str):
        """The open document at ``uri``, or a clear error (closed, unknown)."""
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"editseq: {uri} is not open in the editor (open it first)")
        return doc

    # -- settings --------------------------------------------------------------------------

    def initial_sources(self, initialization_options: Any) -> None:
        """Remember pyproject's and the client's options at ``initialize``; applied at ``initialized``,
        when the client can be told about bad values."""
        raw, self._pyproject_problems = pyproject_settings(self.root)
        self._sources["pyproject.toml [tool.editseq]"] = raw
        self._sources["initializationOptions"] = initialization_options

    def apply_initial_sources(self) -> None:
        for problem in self._pyproject_problems:
            self.warn(problem)
        self.set_settings_source("initializationOptions", self._sources.get("initializationOptions"))

    def set_settings_source(self, name: str, raw: Any) -> None:
        """Record one source of settings, recompute them all, and report any bad value."""
        self._sources[name] = raw
        settings, problems = Settings(), []
        for source, snake in (("pyproject.toml [tool.editseq]", True), ("initializationOptions", False),
                              ("the editseq settings", False)):
            settings, found = merge_settings(settings, self._sources.get(source), source, snake_case=snake)
            problems += found
        self.settings = settings
        for problem in problems:
            self.warn(problem)

    async def pull_configuration(self) -> None:
        caps = self.client_capabilities.workspace
        if not (caps and caps.configuration):
            return
        try:
            (section,) = await self.workspace_configuration_async(
                t.ConfigurationParams(items=[t.ConfigurationItem(section="editseq")]))
        except Exception as exc:  # a client that fails the pull must not stop the server
            self.warn(f"editseq: could not read the editseq settings from the client: {exc}")
            return
        self.set_settings_source("the editseq settings", section)

    # -- runs ------------------------------------------------------------------------------

    def tests_for(self, path: str, function: str) -> list[str]:
        """Tests known to check ``function``: the failure report's, else ``testCommand``'s."""
        if self.report is not None:
            tests = [f.node_id for f in self.report.failures_for(path, function)]
            if tests:
                return tests
        return test_ids_from_command(self.settings.testCommand) if self.settings.testCommand else []

    def relative_path(self, uri: str) -> str:
        root = self.root
        path = Path(to_fs_path(uri) or "")
        if root is None:
            raise RunFailed("editseq: no workspace folder: open a folder (the tests run from its root)")
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            raise RunFailed(f"editseq: {path} is outside the workspace {root}") from None

    def make_request(self, action: str, uri: str, line: int, tests: list[str]) -> RunRequest:
        doc = self.open_document(uri)
        if len(doc.source) > self.settings.maxFileBytes:
            raise RunFailed(f"editseq: the document is too large ({len(doc.source):,} characters; "
                            f"maxFileBytes is {self.settings.maxFileBytes:,})")
        spans = functions_at(doc.source, line)
        if not spans:
            raise RunFailed(f"editseq: no function at line {line + 1} of {uri} (or the file does not parse)")
        span = spans[-1]
        path = self.relative_path(uri)
        if action == "write" and not span.empty:
            raise RunFailed(f"editseq: `{span.qualname}` already has a body; use refine")
        if action != "write":
            tests = tests or self.tests_for(path, span.qualname)
            if not tests:
                raise RunFailed(f"editseq: no tests known for `{span.qualname}`: run pytest with the editseq "
                                "plugin, or set testCommand")
        return RunRequest(action, uri, doc.version or 0, doc.source, self.root, path, span.qualname,
                          tuple(tests))

    def start_run(self, request: RunRequest) -> _Run:
        """The run for ``request``: the one already in flight, or a new one on the run pool."""
        run = self.runs.get(request.key)
        # A cancelled run may still be winding down; a new request must not inherit its cancel.
        if run is not None and not run.future.done() and not run.cancel.is_set():
            return run
        run = self.runs[request.key] = _Run(request)
        settings = self.settings
        backend_future = self.host.backend(settings)
        say = lambda message: self.loop.call_soon_threadsafe(run.say, message)  # noqa: E731

        def work() -> Outcome:
            say("loading the model" if not backend_future.done() else "starting")
            backend = backend_future.result()
            return execute(request, backend, settings, run.cancel, say)

        self.host.run_started()
        run.future = asyncio.wrap_future(self.run_pool.submit(work))
        run.future.add_done_callback(lambda future: self._finished(run, future))
        return run

    def _finished(self, run: _Run, future: asyncio.Future) -> None:
        self.host.run_finished()
        if self.runs.get(run.request.key) is run:
            del self.runs[run.request.key]
        if future.cancelled() or future.exception() is not None:
            return
        outcome = future.result()
        if outcome.steps and not run.cancel.is_set():
            kept = [o for o in self.outcomes.get(outcome.request.uri, [])
                    if o.request.function != outcome.request.function]
            self.outcomes[outcome.request.uri] = [*kept, outcome]

    async def wait_run(self, run: _Run) -> Outcome:
        """The run's outcome, or :class:`RunFailed` with a message for the user."""
        from model_runtime.backends import BackendError
        from model_runtime.refine import RefineError
        from model_runtime.sandbox import SandboxError

        try:
            return await asyncio.shield(run.future)
        except (ModelUnavailable, RefineError, SandboxError, BackendError) as exc:
            raise RunFailed(str(exc) if str(exc).startswith("editseq") else f"editseq: {exc}") from None

    # -- outcomes --------------------------------------------------------------------------

    def fresh_outcome(self, outcome: Outcome) -> int | None:
        """The document version ``outcome`` applies to now, or ``None`` if the text moved on."""
        doc = self.workspace.text_documents.get(outcome.request.uri)
        if doc is None:
            return None
        if doc.version == outcome.request.version or doc.source == outcome.texts[0]:
            return doc.version
        return None

    def drop_stale(self, uri: str) -> None:
        kept = [o for o in self.outcomes.get(uri, []) if self.fresh_outcome(o) is not None]
        if kept:
            self.outcomes[uri] = kept
        else:
            self.outcomes.pop(uri, None)

    def find_outcome(self, run_id: str) -> Outcome | None:
        return next((o for group in self.outcomes.values() for o in group if o.id == run_id), None)

    def step_edit(self, outcome: Outcome, k: int) -> t.WorkspaceEdit:
        version = self.fresh_outcome(outcome)
        if version is None or not 1 <= k <= outcome.steps:
            self.drop_stale(outcome.request.uri)
            raise RunFailed("editseq: the document changed since this run; its edits were dropped (run it again)")
        return prefix_workspace_edit(outcome, k, version, self.encoding, self.client_capabilities)

    # -- failure report --------------------------------------------------------------------

    async def refresh_report(self) -> None:
        """Read the failure report (in a thread) and publish what changed."""
        from model_runtime.failure_report import read_report

        root = self.root
        if root is None:
            return
        self.report = await asyncio.to_thread(read_report, root)
        published = report_diagnostics(self.report, root)
        for uri in self.published - published.keys():
            self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        for uri, diagnostics in published.items():
            self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))
        self.published = set(published)

    async def watch_report(self) -> None:
        """Watch the report: registered file events where the client can, else polling its mtime."""
        from model_runtime.failure_report import REPORT_RELPATH, report_path

        caps = self.client_capabilities.workspace
        watched = caps and caps.did_change_watched_files
        if watched and watched.dynamic_registration:
            options = t.DidChangeWatchedFilesRegistrationOptions(
                watchers=[t.FileSystemWatcher(glob_pattern=f"**/{REPORT_RELPATH}")])
            try:
                await self.client_register_capability_async(t.RegistrationParams(registrations=[t.Registration(
                    id=str(uuid.uuid4()), method=t.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options)]))
                await self.refresh_report()
                return
            except Exception as exc:  # fall back to polling, which every client supports
                log.warning("file watch registration failed: %s", exc)
        root = self.root
        if root is None:
            return
        path = report_path(root)

        async def poll() -> None:
            while True:
                try:
                    mtime = path.stat().st_mtime_ns
                except OSError:
                    mtime = None
                if mtime != self._report_mtime:
                    self._report_mtime = mtime
                    await self.refresh_report()
                await asyncio.sleep(self.settings.reportPollInterval)

        self._poller = asyncio.create_task(poll())

    # -- code actions ----------------------------------------------------------------------

    def resolve_supported(self) -> bool:
        caps = self.client_capabilities.text_document
        action = caps and caps.code_action
        return bool(action and action.resolve_support and "edit" in action.resolve_support.properties)

    def run_action(self, action: str, title: str, uri: str, version: int, span: FunctionSpan,
                   line: int, tests: list[str], diagnostic: t.Diagnostic | None = None) -> t.CodeAction:
        data = {"action": action, "uri": uri, "version": version, "function": span.qualname,
                "line": line, "tests": tests}
        result = t.CodeAction(title=title, kind=FIX_KIND if action == "fix" else WRITE_KIND, data=data,
                              diagnostics=[diagnostic] if diagnostic else None)
        if not self.resolve_supported():
            result.command = t.Command(title=title, command=COMMANDS[action],
                                       arguments=[uri, {"line": line, "character": 0}, *tests])
        return result

    def step_actions(self, uri: str, span: FunctionSpan) -> list[t.CodeAction]:
        out = []
        for outcome in self.outcomes.get(uri, []):
            if outcome.request.function != span.qualname or self.fresh_outcome(outcome) is None:
                continue
            for k in range(1, outcome.steps + 1):
                title = prefix_title(outcome, k)
                kind = FIX_KIND if outcome.request.action == "fix" else WRITE_KIND
                action = t.CodeAction(title=title, kind=kind, data={"run": outcome.id, "k": k},
                                      is_preferred=k == outcome.steps and outcome.verified)
                if not self.resolve_supported():
                    action.command = t.Command(title=title, command=APPLY_COMMAND, arguments=[outcome.id, k])
                out.append(action)
        return out


def build_server() -> EditseqServer:
    """A fresh server with every feature registered (tests and ``editseq serve`` use this)."""
    from . import features

    server = EditseqServer()
    features.register(server)
    return server
