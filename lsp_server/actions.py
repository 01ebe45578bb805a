"""Handlers of what a user asks for: code actions and their resolve, the commands, inline completion.

Every handler here is ``async`` or a plain function that returns within
milliseconds: ``textDocument/codeAction`` only maps the cursor to a function
and returns titles with ``data``; the work happens in ``codeAction/resolve``
(bounded by ``resolveTimeout``) or in the ``editseq.write`` /
``editseq.refine`` commands, which report ``$/progress`` when the client
declared ``window.workDoneProgress`` and stop the run on a progress cancel or
``$/cancelRequest``. A finished run is offered as one code action per step
prefix (``editseq.apply`` for clients without resolve) and, when its first
step inserts at the cursor, as inline completion.

Errors: anything the engine or the server cannot do is an
:class:`~model_runtime.errors.EditseqError`; it is answered as LSP's
``RequestFailed`` with the message behind the ``editseq: `` prefix
(:func:`~.protocol.request_failed`).
"""

from __future__ import annotations

import asyncio
import uuid

from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcRequestCancelled

from model_runtime.edits.code_map import FunctionSpan, spans_at
from model_runtime.errors import EditseqError

from .edits import first_step_insertion, prefix_title
from .protocol import APPLY_COMMAND, COMMANDS, RunFailed, action_kind, for_user, request_failed
from .runbook import Run
from .runs import RunRequest, test_ids_from_command
from .settings import run_config
from .state import EditseqServer

__all__ = ["apply_command", "code_action", "inline_completion", "refine_command", "resolve_code_action",
           "write_command"]

_PYTHON = ("python",)


def _is_python(doc) -> bool:
    return doc.language_id in _PYTHON or doc.uri.endswith((".py", ".pyi"))


# -- code actions ---------------------------------------------------------------------------


async def code_action(ls: EditseqServer, params: t.CodeActionParams) -> list[t.CodeAction]:
    """Fixes for the failing tests in the context, the steps of finished runs, then write or refine."""
    doc = ls.open_document(params.text_document.uri)
    if not _is_python(doc) or len(doc.source) > ls.settings.maxFileBytes:
        return []
    functions = await ls.function_map(doc)
    spans = spans_at(functions, params.range.start.line, params.range.end.line)
    actions = _fix_actions(ls, doc, params.context.diagnostics, spans, functions)
    if not spans:
        return actions
    span, line = spans[-1], params.range.start.line
    actions += _step_actions(ls, doc.uri, span)
    if span.empty and span.documented:
        actions.append(_run_action(ls, "write", for_user(f"write {span.name} edit by edit"), doc, span, line, []))
    elif not span.empty:
        try:
            tests = _tests_for(ls, ls.relative_path(doc.uri), span.qualname)
        except RunFailed:
            tests = []
        if tests:
            actions.append(_run_action(ls, "refine", for_user(f"refine {span.name} until tests pass"), doc, span,
                                       line, []))
    return actions


def _fix_actions(ls: EditseqServer, doc, diagnostics: list[t.Diagnostic],
                 spans: list[FunctionSpan], functions: list[FunctionSpan]) -> list[t.CodeAction]:
    """A "fix" quick fix for each failing test's diagnostic (:mod:`.diagnostics`), run against that test."""
    actions = []
    for diagnostic in diagnostics:
        data = diagnostic.data if isinstance(diagnostic.data, dict) else {}
        if diagnostic.source == "pytest" and data.get("test"):
            line = diagnostic.range.start.line
            fix_spans = spans_at(functions, line) or spans
            if fix_spans:
                name = data["test"].rpartition("::")[2]
                actions.append(_run_action(ls, "fix", for_user(f"fix {name}"), doc, fix_spans[-1], line,
                                           [data["test"]], diagnostic))
    return actions


def _resolve_supported(ls: EditseqServer) -> bool:
    caps = ls.client_capabilities.text_document
    action = caps and caps.code_action
    return bool(action and action.resolve_support and "edit" in action.resolve_support.properties)


def _run_action(ls: EditseqServer, action: str, title: str, doc, span: FunctionSpan, line: int, tests: list[str],
                diagnostic: t.Diagnostic | None = None) -> t.CodeAction:
    """A code action that starts a run when resolved (or, without resolve, runs its command)."""
    data = {"action": action, "uri": doc.uri, "version": doc.version or 0, "function": span.qualname,
            "line": line, "tests": tests}
    result = t.CodeAction(title=title, kind=action_kind(action), data=data,
                          diagnostics=[diagnostic] if diagnostic else None)
    if not _resolve_supported(ls):
        result.command = t.Command(title=title, command=COMMANDS[action],
                                   arguments=[doc.uri, {"line": line, "character": 0}, *tests])
    return result


def _step_actions(ls: EditseqServer, uri: str, span: FunctionSpan) -> list[t.CodeAction]:
    """One code action per step prefix of each finished run of ``span`` that still applies."""
    out = []
    for outcome, done in ls.runs.outcomes(uri, span.qualname):
        for k in range(done + 1, outcome.steps + 1):
            title = prefix_title(outcome, k, done)
            # Only the verified whole fix says ``isPreferred`` (true); an explicit false made eglot pick
            # step 1/2 as its default instead.
            preferred = True if k == outcome.steps and outcome.verified else None
            action = t.CodeAction(title=title, kind=action_kind(outcome.request.action),
                                  data={"run": outcome.id, "k": k}, is_preferred=preferred)
            if not _resolve_supported(ls):
                action.command = t.Command(title=title, command=APPLY_COMMAND, arguments=[outcome.id, k])
            out.append(action)
    return out


async def resolve_code_action(ls: EditseqServer, action: t.CodeAction) -> t.CodeAction:
    """A step's edit, or the run's result within ``resolveTimeout`` (else the command that follows the run)."""
    data = action.data if isinstance(action.data, dict) else {}
    try:
        if "ended" in data:  # resolved before: the run ended with nothing to apply; never run it again
            return _nothing(ls, action, str(data["ended"]))
        if "run" in data:
            outcome = ls.runs.find(str(data["run"]))
            action.edit = ls.runs.step_edit(outcome, int(data.get("k", outcome.steps)), ls.encoding,
                                            ls.client_capabilities)
            return action
        if data.get("action") not in COMMANDS or not isinstance(data.get("uri"), str):
            raise JsonRpcInvalidParams(for_user("this code action carries no editseq data"))
        request = await _request(ls, data["action"], data["uri"], int(data.get("line", 0)),
                                 list(data.get("tests") or []))
        run = ls.runs.start(request, run_config(ls.settings))
        try:
            outcome = await asyncio.wait_for(ls.runs.wait(run), ls.settings.resolveTimeout)
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
            action.edit = ls.runs.step_edit(outcome, outcome.steps, ls.encoding, ls.client_capabilities)
            return action
        return _nothing(ls, action, outcome.summary)
    except EditseqError as exc:
        ls.warn(exc)
        raise request_failed(exc) from None


def _nothing(ls: EditseqServer, action: t.CodeAction, summary: str) -> t.CodeAction:
    """A run that ended with no step: an empty edit and a message saying so.

    Returned unchanged (``data``, no edit, no command), the action made eglot
    resolve it again, re-running the model and the tests each time (32 resolves
    in 100 s); with an empty edit every client is done, and ``data`` now says
    the run ended, so resolving the same action again only repeats the answer.
    """
    ls.inform(f"{summary}: nothing to apply")
    action.edit = t.WorkspaceEdit(changes={})
    action.data = {"ended": summary}
    return action


# -- runs -----------------------------------------------------------------------------------


def _tests_for(ls: EditseqServer, path: str, function: str) -> list[str]:
    """Tests known to check ``function``: the failure report's, else ``testCommand``'s."""
    tests = ls.report_watcher.failing_tests(path, function)
    if tests:
        return tests
    return test_ids_from_command(ls.settings.testCommand) if ls.settings.testCommand else []


async def _request(ls: EditseqServer, action: str, uri: str, line: int, tests: list[str]) -> RunRequest:
    """What to run for ``action`` at ``line`` of the open document ``uri``, or :class:`RunFailed` saying why not."""
    doc = ls.open_document(uri)
    if len(doc.source) > ls.settings.maxFileBytes:
        raise RunFailed(f"the document is too large ({len(doc.source):,} characters; "
                        f"maxFileBytes is {ls.settings.maxFileBytes:,})")
    version, source = doc.version, doc.source  # what the map is of (an edit may land while it parses)
    spans = spans_at(await ls.function_map(doc), line)
    if doc.version != version:
        raise RunFailed("the document changed while this request was read; ask again")
    if not spans:
        raise RunFailed(f"no function at line {line + 1} of {uri} (or the file does not parse)")
    span = spans[-1]
    path = ls.relative_path(uri)
    if action == "write" and not span.empty:
        raise RunFailed(f"`{span.qualname}` already has a body; use refine")
    if action != "write":
        tests = tests or _tests_for(ls, path, span.qualname)
        if not tests:
            raise RunFailed(f"no tests known for `{span.qualname}`: run pytest with the editseq plugin, "
                            "or set testCommand")
    return RunRequest(action, uri, version or 0, source, ls.root, path, span.qualname, tuple(tests))


async def write_command(ls: EditseqServer, uri: str, position: t.Position) -> dict:
    return await _run_command(ls, "write", uri, position, [])


async def refine_command(ls: EditseqServer, uri: str, position: t.Position, *tests) -> dict:
    return await _run_command(ls, "refine", uri, position, tests)


async def _run_command(ls: EditseqServer, action: str, uri: str, position: t.Position, tests) -> dict:
    request_id = ls.protocol.msg_id
    try:
        request = await _request(ls, action, uri, position.line, [str(test) for test in tests])
        run = ls.runs.start(request, run_config(ls.settings))
    except EditseqError as exc:
        raise request_failed(exc) from None
    return await _follow(ls, run, f"editseq {action} {request.function}", request_id)


async def _follow(ls: EditseqServer, run: Run, title: str, request_id) -> dict:
    """Wait for ``run`` with progress and both kinds of cancellation; its result as a small dict."""
    ls.protocol.cancel_events[request_id] = run.cancel  # before any await: a cancel may come at once
    token = await _begin_progress(ls, run, title)
    report = (lambda message: ls.work_done_progress.report(token, t.WorkDoneProgressReport(message=message))) \
        if token else (lambda message: None)
    run.listeners.append(report)
    try:
        while not run.future.done():
            await asyncio.wait({run.future}, timeout=0.05)
            if token and ls.work_done_progress.tokens[token].cancelled():
                run.cancel.set()
        try:
            outcome = await ls.runs.wait(run)
        except EditseqError as exc:
            _end_progress(ls, token, for_user(exc))
            raise request_failed(exc) from None
    finally:
        run.listeners.remove(report)
        ls.protocol.cancel_events.pop(request_id, None)
    if run.cancel.is_set():
        _end_progress(ls, token, "cancelled")
        raise JsonRpcRequestCancelled(for_user(f"{title} was cancelled"))
    _end_progress(ls, token, outcome.summary)
    if outcome.steps:
        ls.inform(f"{outcome.summary}; the steps are in the code actions")
    return {"run": outcome.id, "steps": outcome.steps, "verified": outcome.verified, "passed": outcome.passed,
            "total": outcome.total, "summary": outcome.summary}


async def _begin_progress(ls: EditseqServer, run: Run, title: str) -> str | None:
    """A ``$/progress`` token for ``run``, begun; ``None`` when the client declared no progress or refused it."""
    window = ls.client_capabilities.window
    if not (window and window.work_done_progress):
        return None
    token = str(uuid.uuid4())
    try:
        await ls.work_done_progress.create_async(token)
        ls.work_done_progress.begin(token, t.WorkDoneProgressBegin(title=title, cancellable=True,
                                                                  message=run.last or None))
    except Exception:  # the client refused the token: run without progress
        return None
    return token


def _end_progress(ls: EditseqServer, token: str | None, message: str) -> None:
    if token:
        ls.work_done_progress.end(token, t.WorkDoneProgressEnd(message=message))


async def apply_command(ls: EditseqServer, run_id: str, k: int) -> dict:
    """A finished run's steps up to ``k`` (those not applied yet), applied with ``workspace/applyEdit``
    (clients without resolve)."""
    try:
        outcome = ls.runs.find(run_id)
        edit = ls.runs.step_edit(outcome, k, ls.encoding, ls.client_capabilities)
    except EditseqError as exc:
        raise request_failed(exc) from None
    result = await ls.workspace_apply_edit_async(t.ApplyWorkspaceEditParams(
        edit=edit, label=for_user(f"{outcome.request.function} steps to {k}/{outcome.steps}")))
    return {"applied": result.applied, "reason": result.failure_reason}


# -- inline completion ----------------------------------------------------------------------


def inline_completion(ls: EditseqServer, params: t.InlineCompletionParams) -> t.InlineCompletionList:
    """The next step of a finished run as ghost text, when it inserts exactly at the cursor."""
    ls.open_document(params.text_document.uri)
    position, items = params.position, []
    for outcome, done in ls.runs.outcomes(params.text_document.uri):
        text = first_step_insertion(outcome, position, ls.encoding, done)
        if text is not None:
            items.append(t.InlineCompletionItem(insert_text=text, range=t.Range(start=position, end=position)))
    return t.InlineCompletionList(items=items)
