"""The LSP handlers: each one translates between the protocol and :class:`~.server.EditseqServer`.

Every handler here is ``async`` or a plain function that returns within
milliseconds: ``textDocument/codeAction`` only maps the cursor to a function
and returns titles with ``data``; the work happens in ``codeAction/resolve``
(bounded by ``resolveTimeout``) or in the ``editseq.write`` /
``editseq.refine`` commands, which report ``$/progress`` when the client
declared ``window.workDoneProgress`` and stop the run on a progress cancel or
``$/cancelRequest``.
"""

from __future__ import annotations

import asyncio
import uuid

from lsprotocol import types as t
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcRequestCancelled

from model_runtime.code_map import functions_at

from .server import APPLY_COMMAND, COMMANDS, EditseqServer, RunFailed

__all__ = ["register"]

_PYTHON = ("python",)


def _is_python(doc) -> bool:
    return doc.language_id in _PYTHON or doc.uri.endswith((".py", ".pyi"))


def _fail(exc: RunFailed) -> JsonRpcException:
    """LSP's ``RequestFailed``: the request was valid, the work could not be done; the message says why."""
    return JsonRpcException(str(exc), code=t.LSPErrorCodes.RequestFailed.value)


async def _follow(ls: EditseqServer, run, title: str, request_id) -> dict:
    """Wait for ``run`` with progress and both kinds of cancellation; its result as a small dict."""
    ls.protocol.cancel_events[request_id] = run.cancel  # before any await: a cancel may come at once
    token = None
    window = ls.client_capabilities.window
    if window and window.work_done_progress:
        token = str(uuid.uuid4())
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(token, t.WorkDoneProgressBegin(title=title, cancellable=True,
                                                                      message=run.last or None))
        except Exception:  # the client refused the token: run without progress
            token = None
    report = (lambda message: ls.work_done_progress.report(token, t.WorkDoneProgressReport(message=message))) \
        if token else (lambda message: None)
    run.listeners.append(report)
    try:
        while not run.future.done():
            await asyncio.wait({run.future}, timeout=0.05)
            if token and ls.work_done_progress.tokens[token].cancelled():
                run.cancel.set()
        try:
            outcome = await ls.wait_run(run)
        except RunFailed as exc:
            if token:
                ls.work_done_progress.end(token, t.WorkDoneProgressEnd(message=str(exc)))
            raise _fail(exc) from None
    finally:
        run.listeners.remove(report)
        ls.protocol.cancel_events.pop(request_id, None)
    if run.cancel.is_set():
        if token:
            ls.work_done_progress.end(token, t.WorkDoneProgressEnd(message="cancelled"))
        raise JsonRpcRequestCancelled(f"editseq: {title} was cancelled")
    if token:
        ls.work_done_progress.end(token, t.WorkDoneProgressEnd(message=outcome.summary))
    if outcome.steps:
        ls.window_show_message(t.ShowMessageParams(
            type=t.MessageType.Info, message=f"editseq: {outcome.summary}; the steps are in the code actions"))
    return {"run": outcome.id, "steps": outcome.steps, "verified": outcome.verified, "passed": outcome.passed,
            "total": outcome.total, "summary": outcome.summary}


def register(server: EditseqServer) -> None:  # noqa: C901 - one place that lists every feature
    @server.feature(t.INITIALIZE)
    def initialize(ls: EditseqServer, params: t.InitializeParams) -> None:
        ls.loop = asyncio.get_running_loop()
        ls.initial_sources(params.initialization_options)

    @server.feature(t.INITIALIZED)
    async def initialized(ls: EditseqServer, params: t.InitializedParams) -> None:
        ls.apply_initial_sources()
        await ls.pull_configuration()
        await ls.watch_report()

    @server.feature(t.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: EditseqServer, params: t.DidChangeConfigurationParams) -> None:
        pushed = params.settings
        if isinstance(pushed, dict) and "editseq" in pushed:
            ls.set_settings_source("the editseq settings", pushed["editseq"])
        else:
            await ls.pull_configuration()

    @server.feature(t.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    async def did_change_watched_files(ls: EditseqServer, params: t.DidChangeWatchedFilesParams) -> None:
        await ls.refresh_report()

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: EditseqServer, params: t.DidChangeTextDocumentParams) -> None:
        if params.text_document.uri in ls.outcomes:
            ls.drop_stale(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: EditseqServer, params: t.DidCloseTextDocumentParams) -> None:
        ls.outcomes.pop(params.text_document.uri, None)

    @server.feature(
        t.TEXT_DOCUMENT_CODE_ACTION,
        t.CodeActionOptions(code_action_kinds=["refactor.rewrite.editseq", "quickfix.editseq"],
                            resolve_provider=True),
    )
    def code_action(ls: EditseqServer, params: t.CodeActionParams) -> list[t.CodeAction]:
        doc = ls.open_document(params.text_document.uri)
        if not _is_python(doc) or len(doc.source) > ls.settings.maxFileBytes:
            return []
        spans = functions_at(doc.source, params.range.start.line, params.range.end.line)
        actions = []
        for diagnostic in params.context.diagnostics:
            data = diagnostic.data if isinstance(diagnostic.data, dict) else {}
            if diagnostic.source == "pytest" and data.get("test"):
                line = diagnostic.range.start.line
                fix_spans = functions_at(doc.source, line) or spans
                if fix_spans:
                    name = data["test"].rpartition("::")[2]
                    actions.append(ls.run_action("fix", f"editseq: fix {name}", doc.uri, doc.version or 0,
                                                 fix_spans[-1], line, [data["test"]], diagnostic))
        if not spans:
            return actions
        span = spans[-1]
        actions += ls.step_actions(doc.uri, span)
        line = params.range.start.line
        if span.empty and span.documented:
            actions.append(ls.run_action("write", f"editseq: write {span.name} edit by edit", doc.uri,
                                         doc.version or 0, span, line, []))
        elif not span.empty:
            try:
                tests = ls.tests_for(ls.relative_path(doc.uri), span.qualname)
            except RunFailed:
                tests = []
            if tests:
                actions.append(ls.run_action("refine", f"editseq: refine {span.name} until tests pass",
                                             doc.uri, doc.version or 0, span, line, []))
        return actions

    @server.feature(t.CODE_ACTION_RESOLVE)
    async def resolve(ls: EditseqServer, action: t.CodeAction) -> t.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        try:
            if "run" in data:
                outcome = ls.find_outcome(str(data["run"]))
                if outcome is None:
                    raise RunFailed("editseq: this run's result is gone (the document changed); run it again")
                action.edit = ls.step_edit(outcome, int(data.get("k", outcome.steps)))
                return action
            if data.get("action") not in COMMANDS or not isinstance(data.get("uri"), str):
                raise JsonRpcInvalidParams("editseq: this code action carries no editseq data")
            request = ls.make_request(data["action"], data["uri"], int(data.get("line", 0)),
                                      list(data.get("tests") or []))
            run = ls.start_run(request)
            try:
                outcome = await asyncio.wait_for(ls.wait_run(run), ls.settings.resolveTimeout)
            except asyncio.TimeoutError:
                # Long run: let the command follow it with progress (it attaches to the same run).
                action.command = t.Command(title=action.title, command=COMMANDS[data["action"]],
                                           arguments=[data["uri"], {"line": data.get("line", 0), "character": 0},
                                                      *request.tests])
                return action
            except asyncio.CancelledError:
                run.cancel.set()
                raise
            if outcome.steps:
                action.edit = ls.step_edit(outcome, outcome.steps)
            return action
        except RunFailed as exc:
            ls.warn(str(exc))
            raise _fail(exc) from None

    async def run_command(ls: EditseqServer, action: str, uri: str, position: t.Position, tests) -> dict:
        request_id = ls.protocol.msg_id
        try:
            request = ls.make_request(action, uri, position.line, [str(test) for test in tests])
        except RunFailed as exc:
            raise _fail(exc) from None
        run = ls.start_run(request)
        return await _follow(ls, run, f"editseq {action} {request.function}", request_id)

    @server.command(COMMANDS["write"])
    async def write_command(ls: EditseqServer, uri: str, position: t.Position) -> dict:
        return await run_command(ls, "write", uri, position, [])

    @server.command(COMMANDS["refine"])
    async def refine_command(ls: EditseqServer, uri: str, position: t.Position, *tests) -> dict:
        return await run_command(ls, "refine", uri, position, tests)

    @server.command(APPLY_COMMAND)
    async def apply_command(ls: EditseqServer, run_id: str, k: int) -> dict:
        outcome = ls.find_outcome(run_id)
        try:
            if outcome is None:
                raise RunFailed("editseq: this run's result is gone (the document changed); run it again")
            edit = ls.step_edit(outcome, k)
        except RunFailed as exc:
            raise _fail(exc) from None
        result = await ls.workspace_apply_edit_async(t.ApplyWorkspaceEditParams(
            edit=edit, label=f"editseq: {outcome.request.function} steps 1-{k}"))
        return {"applied": result.applied, "reason": result.failure_reason}

    @server.feature(t.TEXT_DOCUMENT_INLINE_COMPLETION)
    def inline_completion(ls: EditseqServer, params: t.InlineCompletionParams) -> t.InlineCompletionList:
        from .inline import first_step_insertion

        ls.open_document(params.text_document.uri)
        items = []
        for outcome in ls.outcomes.get(params.text_document.uri, []):
            if ls.fresh_outcome(outcome) is not None:
                text = first_step_insertion(outcome, params.position, ls.encoding)
                if text is not None:
                    position = params.position
                    items.append(t.InlineCompletionItem(
                        insert_text=text, range=t.Range(start=position, end=position)))
        return t.InlineCompletionList(items=items)

    @server.feature(t.SHUTDOWN)
    def shutdown(ls: EditseqServer, params: None) -> None:
        for run in list(ls.runs.values()):
            run.cancel.set()
        ls.protocol.cancel_pending()
        if ls._poller is not None:
            ls._poller.cancel()
        ls.host.close()
        ls.run_pool.shutdown(wait=False, cancel_futures=True)
