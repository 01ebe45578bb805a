"""Handlers of the session: initialize, settings, watched files, document edits and closes, shutdown.

Each is a small module-level function of ``(ls, params)``, registered in
:func:`~.server.build_server`. Settings come from three sources (see
:mod:`.settings`): pyproject and ``initializationOptions`` are read at
``initialize`` and applied at ``initialized``, when the client can be told
about bad values; the client's ``editseq`` section is pulled then and on every
``workspace/didChangeConfiguration`` (or taken from the push, when the client
sends it). Document edits only drop the finished runs whose text is gone.
"""

from __future__ import annotations

import asyncio

from lsprotocol import types as t

from .settings import CLIENT_SETTINGS
from .state import EditseqServer

__all__ = ["did_change", "did_change_configuration", "did_change_watched_files", "did_close", "did_open", "exit",
           "initialize", "initialized", "shutdown", "stop"]


def initialize(ls: EditseqServer, params: t.InitializeParams) -> None:
    ls.loop = asyncio.get_running_loop()
    ls.initial_sources(params.initialization_options)


async def initialized(ls: EditseqServer, params: t.InitializedParams) -> None:
    ls.apply_initial_sources()
    await _pull_configuration(ls)
    await ls.report_watcher.watch()


async def did_change_configuration(ls: EditseqServer, params: t.DidChangeConfigurationParams) -> None:
    pushed = params.settings
    if isinstance(pushed, dict) and "editseq" in pushed:
        ls.set_settings_source(CLIENT_SETTINGS, pushed["editseq"])
    else:
        await _pull_configuration(ls)


async def _pull_configuration(ls: EditseqServer) -> None:
    """The client's ``editseq`` section, where the client answers ``workspace/configuration``."""
    caps = ls.client_capabilities.workspace
    if not (caps and caps.configuration):
        return
    try:
        (section,) = await ls.workspace_configuration_async(
            t.ConfigurationParams(items=[t.ConfigurationItem(section="editseq")]))
    except Exception as exc:  # a client that fails the pull must not stop the server
        ls.warn(f"could not read the editseq settings from the client: {exc}")
        return
    ls.set_settings_source(CLIENT_SETTINGS, section)


async def did_change_watched_files(ls: EditseqServer, params: t.DidChangeWatchedFilesParams) -> None:
    await ls.report_watcher.refresh()


def did_change(ls: EditseqServer, params: t.DidChangeTextDocumentParams) -> None:
    ls.document_changed(params)


def did_open(ls: EditseqServer, params: t.DidOpenTextDocumentParams) -> None:
    ls.report_watcher.reopened(params.text_document.uri)


def did_close(ls: EditseqServer, params: t.DidCloseTextDocumentParams) -> None:
    ls.runs.forget(params.text_document.uri)
    ls.forget_document(params.text_document.uri)


def shutdown(ls: EditseqServer, params: None) -> None:
    """Stop every run, answer every pending request, stop watching, and let the workers go."""
    ls.shutdown_received = True
    ls.protocol.cancel_pending()
    stop(ls)


def exit(ls: EditseqServer, params: None) -> None:  # noqa: A001 - the LSP method's name
    """The client is leaving (with or without ``shutdown``): nothing may run on after it."""
    stop(ls)


def stop(ls: EditseqServer) -> None:
    """Cancel every run (model and tests) and release the workers; idempotent. ``editseq serve`` also
    calls it when the client's input ends without ``exit``."""
    ls.runs.cancel_all()
    ls.report_watcher.close()
    ls.host.close()
    ls.runs.close()
