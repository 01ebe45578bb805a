"""Real tiny models, workspaces and a pytest-lsp client for the language-server tests.

One memorising model (trained here, ~20 s on one core) knows the answers the
server tests need: the two ``clamp`` repairs of :mod:`refine_models` (so a
refine through the server goes red to green) and a two-step LintSeq answer
for the ``add`` stub (so "write" has known steps). A second model with the
same tokenizer and untrained weights never stops talking: runs on it last
until cancelled, which the cancellation and latency checks need.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path

from lsprotocol import types as t
from pytest_lsp import ClientServerConfig
from pytest_lsp.client import make_test_lsp_client

from model_runtime.edits.editpath import insertion_diff
from model_runtime.prompting.instruction import build_instruction
from model_runtime.prompting.formats import get_format
from model_runtime.refine.loop import write_prompt
from refine_models import _examples

STUB = 'def add(a, b):\n    """Return the sum of a and b."""\n'
STUB_STEPS = [
    insertion_diff(["def add(a, b):", "    total = a + b"], [True, True]),
    insertion_diff(["def add(a, b):", "    total = a + b", "    return total"], [False, False, True]),
]
STUB_WRITTEN = 'def add(a, b):\n    """Return the sum of a and b."""\n    total = a + b\n    return total\n'

#: The server's environment: offline hub, one torch thread, no third-party pytest plugins in the sandbox.
SERVER_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
              "TRANSFORMERS_VERBOSITY": "error"}


@functools.cache
def lsp_model() -> Path:
    """The memorising model's folder (clamp repairs + the ``add`` stub's steps)."""
    from model_runtime.training.tiny_model import MemoriseSettings, train_memorised_model

    scratch = Path(tempfile.mkdtemp(prefix="editseq-lsp-model-"))
    instruction = build_instruction(STUB, "add", max_tokens=512).text
    write = (write_prompt(instruction), get_format("lintseq").render_answer(STUB_STEPS))
    report = train_memorised_model(scratch / "model", [*_examples(scratch), write], MemoriseSettings(steps=220),
                                   formats=("lintseq", "cycle"))
    assert report.final_loss < 0.05, report
    return report.folder


@functools.cache
def endless_model() -> Path:
    """Untrained weights with :func:`lsp_model`'s tokenizer that never end a sequence."""
    from transformers import AutoTokenizer

    from model_runtime.training.tiny_model import build_model, save_model

    tokenizer = AutoTokenizer.from_pretrained(lsp_model())
    model = build_model(tokenizer, "tiny", seed=1)
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|diff|>")]
    return save_model(model, tokenizer, Path(tempfile.mkdtemp(prefix="editseq-endless-")) / "model")


def make_client():
    """pytest-lsp's client with the lsprotocol Command|CodeAction structuring fix (clients.md §2.3)."""
    client = make_test_lsp_client()
    converter = client.protocol._converter
    converter.register_structure_hook(t.Command | t.CodeAction, lambda obj, _: converter.structure(
        obj, t.Command if isinstance(obj.get("command"), str) else t.CodeAction))
    client.applied = []
    client.statuses = []

    @client.feature(t.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: t.ApplyWorkspaceEditParams):
        client.applied.append(params)
        return t.ApplyWorkspaceEditResult(applied=True)

    @client.feature("editseq/status")
    def status(params):
        client.statuses.append((params.state, params.message))

    @client.feature(t.CLIENT_REGISTER_CAPABILITY)
    def register(params: t.RegistrationParams):
        client.registrations = params.registrations

    return client


SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "model_runtime.cli", "serve", "--stdio"],
                            client_factory=make_client, server_env=SERVER_ENV)


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def open_doc(client, path: Path, text: str, language: str = "python", version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
        uri=uri, language_id=language, version=version, text=text)))
    return uri


async def code_actions(client, uri: str, line: int, diagnostics=()) -> list[t.CodeAction]:
    return await client.text_document_code_action_async(t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        range=t.Range(start=t.Position(line=line, character=0), end=t.Position(line=line, character=0)),
        context=t.CodeActionContext(diagnostics=list(diagnostics))))
