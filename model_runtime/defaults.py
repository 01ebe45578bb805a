"""Defaults, defined once: sampling, the repair budget and the backend.

Every front end takes its defaults from here: ``editseq`` flags, the pytest
plugin's ``--editseq-*`` options, the language server's settings, and the
evaluation and CYCLE-collection settings. Change one here and all of them
follow. Imports nothing, so anything may import it.
"""

from __future__ import annotations

#: Where the model runs: in this process (transformers) or behind an OpenAI-compatible server.
BACKENDS = ("transformers", "openai")
BACKEND = "transformers"
#: Base URL of the OpenAI-compatible server (``--backend openai``): vLLM's default port.
ENDPOINT = "http://127.0.0.1:8000/v1"
#: ``auto``: cuda, then mps, then cpu.
DEVICE = "auto"
#: The name of the model shipped inside the package (``model_runtime/embedded_model/``, package data),
#: resolved by the transformers backend: no download, no network. A local folder of that name is
#: ``./embedded``.
EMBEDDED_MODEL = "embedded"
#: The public LintSeq model on the Hugging Face hub, one setting away.
HUB_MODEL = "upiter/TinyCodeLM-150M-LintSeqInstruct"
#: The model every front end uses when none is set.
MODEL = EMBEDDED_MODEL

#: The prompt format a model speaks: ``lintseq`` (instruction + insertion diffs; the public LintSeq
#: models, ours) or ``chat`` (an instruct model's chat template, answered with one fenced diff);
#: ``auto`` reads it off the model (its folder's manifest, its tokenizer, the server's model entry).
PROMPT_FORMAT = "auto"
WRITE_FORMATS = ("auto", "lintseq", "chat")

#: Sampling. Temperature 0 is greedy (then extra candidates repeat the first).
TEMPERATURE = 0.0
TOP_P = 0.95
#: The LintSeq authors' evaluation settings: 512 new tokens, at least 8 (a shorter answer would be
#: an empty or truncated diff sequence).
MAX_NEW_TOKENS = 512
MIN_NEW_TOKENS = 8
CANDIDATES = 1
SEED = 0
#: Sampling where several different answers are the point (CYCLE collection).
SAMPLING_TEMPERATURE = 0.8

#: Repair rounds after round 0.
ROUNDS = 4
#: How a repair round gets its candidates: ``generate`` samples ``cycle`` repair diffs (for models
#: trained on them); ``rank`` enumerates the single-edit repairs of the code (operator, value,
#: variable, function, excess) and tests the ones the model finds likeliest as its ``cycle`` answer;
#: ``rewrite`` asks in the model's own format with the failure as context (a LintSeq model writes
#: the function again from an empty body; a chat model is asked for one diff); ``auto`` follows the
#: model's profile (manifest ``repair: rank``, else ``generate`` when it was trained on ``cycle``,
#: else ``rewrite``).
STRATEGIES = ("auto", "generate", "rank", "rewrite")
STRATEGY = "auto"

#: What "verified" checks besides the failing tests: ``files`` (every test in the failing tests'
#: files that passed before the change must still pass), ``suite`` (every test a bare ``pytest``
#: collects that passed before), ``failing`` (only the failing tests: fastest, and a fix may then
#: break a test that passed).
VERIFY_SCOPES = ("files", "suite", "failing")
VERIFY = "files"
#: The test id that stands for the whole suite (what a bare ``pytest`` collects: ``testpaths``, else the rootdir).
SUITE = "."

#: Upper bounds on every number a front end takes (flags, options, settings), so that no value can
#: tie the machine up for ever or overflow: checked where a request, budget or run config is made.
LIMITS = {
    "rounds": 100,
    "candidates": 64,
    "max_new_tokens": 32768,
    "timeout": 86400.0,
    "temperature": 10.0,
}

