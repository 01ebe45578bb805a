"""The server object every handler gets as ``ls``: pygls' server plus editseq's state.

It holds the parts and a few helpers, nothing more: the merged
:class:`~.settings.Settings` and their sources, the :class:`~.model_host.ModelHost`,
the :class:`~.runbook.RunBook` (runs in flight and finished), and the
:class:`~.diagnostics.ReportWatcher` (the failure report as diagnostics).
The handlers (:mod:`.lifecycle`, :mod:`.actions`) import this module; the
module that registers them (:mod:`.server`) imports both, so nothing here
imports a handler.

Threads: the asyncio event loop answers every request and notification and
never waits on the model or the tests; the model loads in its own worker
(:mod:`.model_host`); each run is one call into the engine on the run book's
pool, and its progress comes back to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from model_runtime import __version__

from .diagnostics import ReportWatcher
from .model_host import ModelHost
from .protocol import STATUS_METHOD, EditseqProtocol, RunFailed, for_user
from .runbook import RunBook
from .settings import INITIALIZATION_OPTIONS, PYPROJECT, Settings, pyproject_settings, settings_from

__all__ = ["EditseqServer"]


class EditseqServer(LanguageServer):
    """pygls' server plus editseq's state (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("editseq", __version__, protocol_cls=EditseqProtocol,
                         text_document_sync_kind=t.TextDocumentSyncKind.Incremental)
        self.settings = Settings()
        self._sources: dict[str, Any] = {}
        self._pyproject_problems: list[str] = []
        self._reported_problems: set[str] = set()  # the bad settings the user was told about
        self.loop: asyncio.AbstractEventLoop | None = None
        self.host = ModelHost(self._status_from_thread)
        self.runs = RunBook(self.host, lambda uri: self.workspace.text_documents.get(uri))
        self.report_watcher = ReportWatcher(self)
        #: The client asked ``shutdown`` before leaving (``editseq serve`` then exits 0, else 1).
        self.shutdown_received = False
        #: Each open document's function map, for its latest version only (dropped on close).
        self._maps: dict[str, tuple[int | None, Any]] = {}  # uri -> (version, CodeMap)

    @property
    def root(self) -> Path | None:
        root = self.workspace.root_path
        return Path(root) if root else None

    @property
    def encoding(self) -> str:
        encoding = self.workspace.position_encoding
        return getattr(encoding, "value", encoding) or "utf-16"

    # -- telling the user -----------------------------------------------------------------

    def status(self, state: str, message: str = "") -> None:
        """The ``editseq/status`` notification (with the sandbox mode in force); an ``error`` is also shown."""
        from model_runtime.run.engine import sandbox_mode

        self.protocol.notify(STATUS_METHOD, {"state": state, "message": message, "sandbox": sandbox_mode()})
        if state == "error":
            self.window_show_message(t.ShowMessageParams(type=t.MessageType.Error, message=message))

    def _status_from_thread(self, state: str, message: str) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.status, state, message)

    def warn(self, message: object) -> None:
        """Show ``message`` (text or an error, without the prefix) as a warning."""
        self.window_show_message(t.ShowMessageParams(type=t.MessageType.Warning, message=for_user(message)))

    def inform(self, message: object) -> None:
        self.window_show_message(t.ShowMessageParams(type=t.MessageType.Info, message=for_user(message)))

    # -- documents and paths --------------------------------------------------------------

    async def function_map(self, doc) -> list:
        """The functions of ``doc``, parsed once per version in a worker thread: a big file never
        holds the event loop (and every other request) while it parses, and code actions on an
        unchanged document answer from the map (which :meth:`document_changed` keeps current)."""
        from model_runtime.edits.code_map import code_map

        cached = self._maps.get(doc.uri)
        if cached is not None and cached[0] == doc.version:
            return list(cached[1].spans)
        version, source = doc.version, doc.source
        mapped = await asyncio.to_thread(code_map, source)
        current = self.workspace.text_documents.get(doc.uri)
        if current is not None and current.version == version:  # still open, and not edited meanwhile
            self._maps[doc.uri] = (version, mapped)
        return list(mapped.spans)

    def document_changed(self, params: t.DidChangeTextDocumentParams) -> None:
        """Keep the function map current after an edit inside one statement (only it is parsed again,
        in microseconds); anything else drops the map, and the next request parses in a thread.

        A cached map is always of the text before this change: it is stored only while its version
        is the document's, and every change either updates it here or drops it.
        """
        from model_runtime.edits.code_map import source_lines, updated

        uri = params.text_document.uri
        cached, doc = self._maps.pop(uri, None), self.workspace.text_documents.get(uri)
        changes = params.content_changes
        if cached is None or doc is None or len(changes) != 1 or not isinstance(
                changes[0], t.TextDocumentContentChangePartial):
            return
        change = changes[0].range
        first, last = change.start.line, change.end.line
        added = (len(source_lines(changes[0].text + "x")) - 1) - (last - first)
        mapped = updated(cached[1], doc.source, first, last, added)
        if mapped is not None:
            self._maps[uri] = (doc.version, mapped)

    def forget_document(self, uri: str) -> None:
        self._maps.pop(uri, None)

    def open_document(self, uri: str):
        """The open document at ``uri``, or a clear error (closed, unknown)."""
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(for_user(f"{uri} is not open in the editor (open it first)"))
        return doc

    def relative_path(self, uri: str) -> str:
        """``uri``'s path relative to the workspace root (the tests run from there), or :class:`RunFailed`."""
        root = self.root
        path = Path(to_fs_path(uri) or "")
        if root is None:
            raise RunFailed("no workspace folder: open a folder (the tests run from its root)")
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            raise RunFailed(f"{path} is outside the workspace {root}") from None

    # -- settings -------------------------------------------------------------------------

    def initial_sources(self, initialization_options: Any) -> None:
        """Remember pyproject's and the client's options at ``initialize``; applied at ``initialized``,
        when the client can be told about bad values."""
        raw, self._pyproject_problems = pyproject_settings(self.root)
        self._sources[PYPROJECT] = raw
        self._sources[INITIALIZATION_OPTIONS] = initialization_options

    def apply_initial_sources(self) -> None:
        for problem in self._pyproject_problems:
            self.warn(problem)
        self.set_settings_source(INITIALIZATION_OPTIONS, self._sources.get(INITIALIZATION_OPTIONS))

    def set_settings_source(self, name: str, raw: Any) -> None:
        """Record one source of settings, recompute them all, and report any bad value."""
        self._sources[name] = raw
        self.settings, problems = settings_from(self._sources)
        # Each bad value once: eglot pushes the settings at connect and the server pulls them too.
        for problem in problems:
            if problem not in self._reported_problems:
                self.warn(problem)
        self._reported_problems = set(problems)
