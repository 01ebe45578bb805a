"""Failing tests as diagnostics, from the failure report the pytest plugin writes.

The report (:mod:`model_runtime.sandbox.failure_report`, one schema for both sides)
names, per failing test, the function under test and the line that failed
there. Each becomes an error on that line with ``source: "pytest"``, the
test's location as ``relatedInformation``, and the test id in ``data`` so the
"fix" quick fix knows what to run. A failure with no known target is shown
on the test itself. Publishing compares with what was published last, so a
file whose tests now pass gets an empty list (its diagnostics clear).

:class:`ReportWatcher` keeps the report current: it registers a file watch
for the report where the client can (``workspace/didChangeWatchedFiles``
then calls :meth:`ReportWatcher.refresh`), and otherwise polls the report's
mtime every ``reportPollInterval`` seconds, which every client supports. The
report also names the tests of a function, which a refine runs against.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from lsprotocol import types as t
from pygls.uris import from_fs_path

__all__ = ["ReportWatcher", "report_diagnostics"]

log = logging.getLogger(__name__)


#: LSP positions are unsigned 32-bit; a line past this is clamped (no real file is that long).
_MAX_LINE = 2**31 - 2


def _line(number: int | None) -> t.Range:
    line = min(max((number or 1) - 1, 0), _MAX_LINE) if isinstance(number, int) else 0
    return t.Range(start=t.Position(line=line, character=0), end=t.Position(line=line + 1, character=0))


def _inside(root: Path, relative: str | None) -> bool:
    """Whether the report's path stays in the workspace (a report is a file anyone can write)."""
    if not relative:
        return False
    try:
        (root / relative).resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def report_diagnostics(report, root: Path) -> dict[str, list[t.Diagnostic]]:
    """``{uri: diagnostics}`` for every file the report blames (``report`` may be ``None``).

    Only files inside the workspace get diagnostics: a failure whose test path
    leads outside it (``../../etc/shadow``) is left out, and a target outside
    it falls back to the test's own line.
    """
    out: dict[str, list[t.Diagnostic]] = {}
    for failure in report.failures if report is not None else ():
        if not _inside(root, failure.test_path):
            continue
        test_uri = from_fs_path(str(root / failure.test_path))
        name = failure.node_id.rpartition("::")[2] or failure.node_id
        message = f"{name} failed: {failure.message}"
        if failure.expected is not None or failure.actual is not None:
            message += f" (expected {failure.expected}, got {failure.actual})"
        related = [t.DiagnosticRelatedInformation(
            location=t.Location(uri=test_uri, range=_line(failure.test_line)), message=f"test {failure.node_id}")]
        if failure.target_path and _inside(root, failure.target_path):
            uri, where = from_fs_path(str(root / failure.target_path)), _line(failure.target_line)
        else:
            uri, where = test_uri, _line(failure.test_line)
        out.setdefault(uri, []).append(t.Diagnostic(
            range=where, message=message, severity=t.DiagnosticSeverity.Error, source="pytest",
            code=name, related_information=related,
            data={"test": failure.node_id, "function": failure.target_function, "path": failure.target_path},
        ))
    return out


def _read_and_map(root: Path):
    from model_runtime.sandbox.failure_report import read_report

    report = read_report(root)
    return report, report_diagnostics(report, root)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class ReportWatcher:
    """The failure report of the workspace, re-read when it changes and published as diagnostics.

    ``server`` is the :class:`~.state.EditseqServer`: its ``root``, ``settings``,
    client capabilities, and the publish and register calls of pygls.
    """

    def __init__(self, server) -> None:
        self._server = server
        self.report = None
        self._published: set[str] = set()
        self._diagnostics: dict[str, list[t.Diagnostic]] = {}
        self._mtime: int | None = None
        self._poller: asyncio.Task | None = None

    def failing_tests(self, path: str, function: str) -> list[str]:
        """The ids of the report's failing tests that check ``path::function``."""
        if self.report is None:
            return []
        return [f.node_id for f in self.report.failures_for(path, function)]

    async def refresh(self) -> None:
        """Read the failure report (in a thread) and publish what changed."""
        from model_runtime.sandbox.failure_report import report_path

        ls, root = self._server, self._server.root
        if root is None:
            return
        self._mtime = _mtime(report_path(root))  # what the poller compares with: this read saw it
        try:
            # Reading and mapping (paths resolved, per failure) both off the event loop.
            self.report, published = await asyncio.to_thread(_read_and_map, root)
        except Exception:  # whatever a report holds, the watcher lives on for the next one
            log.exception("the failure report could not be turned into diagnostics")
            self.report, published = None, {}
        for uri in self._published - published.keys():
            ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        for uri, diagnostics in published.items():
            ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))
        self._published = set(published)
        self._diagnostics = published

    def reopened(self, uri: str) -> None:
        """A document opened again: its diagnostics, which some clients drop on close, go out again."""
        diagnostics = self._diagnostics.get(uri)
        if diagnostics:
            self._server.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    async def watch(self) -> None:
        """Watch the report: registered file events where the client can, *and* polling its mtime.

        A client's watcher may never deliver the change (eglot misses the atomic
        rename, and a ``*`` ``.gitignore`` in ``.editseq/`` hides it from watch
        lists), so the poller always runs; it reads the report only when the
        file on disk differs from what the last read saw, so a delivered event
        costs nothing twice.
        """
        from model_runtime.sandbox.failure_report import REPORT_RELPATH, report_path

        ls = self._server
        caps = ls.client_capabilities.workspace
        watched = caps and caps.did_change_watched_files
        if watched and watched.dynamic_registration:
            options = t.DidChangeWatchedFilesRegistrationOptions(
                watchers=[t.FileSystemWatcher(glob_pattern=f"**/{REPORT_RELPATH}")])
            try:
                await ls.client_register_capability_async(t.RegistrationParams(registrations=[t.Registration(
                    id=str(uuid.uuid4()), method=t.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options)]))
            except Exception as exc:  # polling alone, which every client supports
                log.warning("file watch registration failed: %s", exc)
        if ls.root is not None:
            self._poller = asyncio.create_task(self._poll(report_path(ls.root)))

    async def _poll(self, path: Path) -> None:
        while True:
            mtime = _mtime(path)
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    await self.refresh()
                except Exception:  # a publish that failed must not end the polling
                    log.exception("publishing the failure report failed")
            await asyncio.sleep(self._server.settings.reportPollInterval)

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
