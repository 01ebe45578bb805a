"""The editseq language server: :func:`build_server`, the one place every LSP feature is registered.

``editseq serve`` and the VS Code extension import this module. The handlers
are small module-level functions grouped by feature, each taking the server
as ``ls``:

* :mod:`.lifecycle`: initialize, initialized, configuration, watched files,
  document changes and closes, shutdown;
* :mod:`.actions`: code actions and their resolve, the ``editseq.write`` /
  ``editseq.refine`` / ``editseq.apply`` commands, inline completion.

They share :class:`~.state.EditseqServer` (settings, model host, run book,
failure report watcher), which imports no handler: the imports go one way,
from here to the handlers to the state.
"""

from __future__ import annotations

from lsprotocol import types as t

from . import actions, lifecycle
from .protocol import APPLY_COMMAND, CODE_ACTION_KINDS, COMMANDS
from .state import EditseqServer

__all__ = ["EditseqServer", "build_server"]


def build_server() -> EditseqServer:
    """A fresh server with every feature registered (tests and ``editseq serve`` use this)."""
    server = EditseqServer()
    feature = server.feature
    feature(t.INITIALIZE)(lifecycle.initialize)
    feature(t.INITIALIZED)(lifecycle.initialized)
    feature(t.WORKSPACE_DID_CHANGE_CONFIGURATION)(lifecycle.did_change_configuration)
    feature(t.WORKSPACE_DID_CHANGE_WATCHED_FILES)(lifecycle.did_change_watched_files)
    feature(t.TEXT_DOCUMENT_DID_CHANGE)(lifecycle.did_change)
    feature(t.TEXT_DOCUMENT_DID_OPEN)(lifecycle.did_open)
    feature(t.TEXT_DOCUMENT_DID_CLOSE)(lifecycle.did_close)
    feature(t.SHUTDOWN)(lifecycle.shutdown)
    feature(t.EXIT)(lifecycle.exit)

    feature(t.TEXT_DOCUMENT_CODE_ACTION, t.CodeActionOptions(code_action_kinds=list(CODE_ACTION_KINDS),
                                                             resolve_provider=True))(actions.code_action)
    feature(t.CODE_ACTION_RESOLVE)(actions.resolve_code_action)
    feature(t.TEXT_DOCUMENT_INLINE_COMPLETION)(actions.inline_completion)
    server.command(COMMANDS["write"])(actions.write_command)
    server.command(COMMANDS["refine"])(actions.refine_command)
    server.command(APPLY_COMMAND)(actions.apply_command)
    return server
