"""Latency of ``textDocument/codeAction`` and ``didChange`` while a generation runs in the same server.

Clients expect code actions at once, so the event loop must stay free while
the model generates in a worker thread (which holds the GIL between torch
calls). This starts ``editseq serve`` as a subprocess, loads a model that
never stops generating (untrained weights, end-of-text suppressed; built
here unless ``--model`` names a folder), starts ``editseq.write`` on a stub,
and once generation is under way times ``--requests`` round trips of:

* ``codeAction`` alone;
* ``didChange`` followed by ``codeAction`` (messages are handled in order, so
  the answer also proves the change was applied; the change's own cost is
  this minus the codeAction alone);
* with a 1 MB Python file open too (``--big-kb``; ``maxFileBytes`` raised so
  that it gets code actions): ``didChange`` inside one of its functions
  followed by ``codeAction`` there, and the first ``codeAction`` after opening
  it (a whole parse, in a worker thread) — what the small file's requests
  wait meanwhile is in the rows above.

Then it cancels the run. Prints p50/p99 in milliseconds. Goal: p99 < 50 ms.
Not a test.

    python benchmarks/lsp_latency.py [--requests 300] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as t
from pygls.lsp.client import LanguageClient

STUB = 'def add(a, b):\n    """Return the sum of a and b."""\n'


def big_source(kilobytes: int) -> str:
    """About ``kilobytes`` KB of plain Python: many small documented functions."""
    one = ('def f{n}(values, limit={n}):\n    """Keep the values under the limit, doubled."""\n'
           '    out = []\n    for value in values:\n        if value < limit:\n'
           '            out.append(value * 2)\n    return out\n\n\n')
    count = kilobytes * 1000 // len(one.format(n=1000)) + 1
    return "".join(one.format(n=n) for n in range(count))


def endless_model(folder: Path) -> Path:
    """A tiny model with untrained weights that never ends a sequence."""
    from model_runtime.training.tiny_model import build_model, save_model, stdlib_sample, train_tokenizer

    tokenizer = train_tokenizer(stdlib_sample(20), 512)
    model = build_model(tokenizer, "tiny", seed=1)
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|diff|>")]
    model.config.max_position_embeddings = 1 << 16  # generation is cut where the context ends: make it far
    return save_model(model, tokenizer, folder)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms   (n={len(ordered)})"


async def measure(model: Path, workspace: Path, requests: int, big_kb: int) -> None:
    (workspace / "stub.py").write_text(STUB)
    big = big_source(big_kb)
    (workspace / "big.py").write_text(big)
    client = LanguageClient("bench", "1")
    statuses: list[tuple[str, str]] = []
    client.feature("editseq/status")(lambda params: statuses.append((params.state, params.message)))
    client.feature(t.WINDOW_SHOW_MESSAGE)(lambda params: print(f"server says: {params.message}"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    await client.start_io(sys.executable, "-m", "model_runtime.cli", "serve", env=env)
    await client.initialize_async(t.InitializeParams(
        capabilities=t.ClientCapabilities(), root_uri=workspace.as_uri(),
        initialization_options={"model": str(model), "device": "cpu", "maxNewTokens": 32_768, "timeout": 3600.0,
                                "maxFileBytes": 4 * len(big), "testCommand": "pytest tests"}))
    client.initialized(t.InitializedParams())
    uri = (workspace / "stub.py").as_uri()
    client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=STUB)))
    params = t.CodeActionParams(text_document=t.TextDocumentIdentifier(uri=uri),
                                range=t.Range(start=t.Position(line=1, character=0), end=t.Position(line=1, character=0)),
                                context=t.CodeActionContext(diagnostics=[]))
    run = asyncio.ensure_future(client.protocol.send_request_async(
        t.WORKSPACE_EXECUTE_COMMAND, t.ExecuteCommandParams(
            command="editseq.write", arguments=[uri, {"line": 1, "character": 0}]), msg_id="bench-run"))
    while ("ready", str(model)) not in statuses:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # generation is under way
    big_uri = (workspace / "big.py").as_uri()
    client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
        uri=big_uri, language_id="python", version=1, text=big)))
    middle = big.count("\n") // 2
    middle -= middle % 9  # the first line of a function
    big_params = t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=big_uri),
        range=t.Range(start=t.Position(line=middle + 2, character=0), end=t.Position(line=middle + 2, character=0)),
        context=t.CodeActionContext(diagnostics=[]))
    start = time.perf_counter()
    first_big = await client.text_document_code_action_async(big_params)
    first_parse = time.perf_counter() - start
    alone, with_change, big_change = [], [], []
    for n in range(requests):
        start = time.perf_counter()
        await client.text_document_code_action_async(params)
        alone.append(time.perf_counter() - start)
        start = time.perf_counter()
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=n + 2),
            content_changes=[t.TextDocumentContentChangePartial(
                range=t.Range(start=t.Position(line=2, character=0), end=t.Position(line=2, character=0)),
                text="#\n")]))
        await client.text_document_code_action_async(params)
        with_change.append(time.perf_counter() - start)
        start = time.perf_counter()
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=big_uri, version=n + 2),
            content_changes=[t.TextDocumentContentChangePartial(
                range=t.Range(start=t.Position(line=middle + 3, character=0),
                              end=t.Position(line=middle + 3, character=0)),
                text="    # edited\n" if n % 2 == 0 else "")]))
        await client.text_document_code_action_async(big_params)
        big_change.append(time.perf_counter() - start)
    still_running = not run.done()
    client.cancel_request(t.CancelParams(id="bench-run"))
    try:
        await run
    except Exception:  # the cancelled request answers with an error, as it should
        pass
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    print(f"generation running throughout: {still_running}")
    print(f"codeAction             {percentiles(alone)}")
    print(f"didChange + codeAction {percentiles(with_change)}")
    print(f"{len(big) / 1e6:.2f} MB file, first codeAction (whole parse) {first_parse * 1000:.1f} ms, "
          f"{len(first_big or [])} action(s)")
    print(f"1 MB file: didChange in a function + codeAction {percentiles(big_change)}")
    slowest = sorted(range(len(big_change)), key=lambda i: -big_change[i])[:5]
    print("  slowest: " + ", ".join(f"#{i} {big_change[i] * 1000:.0f} ms" for i in slowest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: build an endless one)")
    parser.add_argument("--big-kb", type=int, default=1000, help="size of the big file in KB (default: 1000)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="editseq-lsp-bench-") as scratch:
        model = args.model or endless_model(Path(scratch) / "model")
        workspace = Path(scratch) / "ws"
        workspace.mkdir()
        asyncio.run(measure(model, workspace, args.requests, args.big_kb))


if __name__ == "__main__":
    main()
