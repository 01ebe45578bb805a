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

#: Prompt format for writing a function (repairs use ``cycle``), and the formats that can write one.
PROMPT_FORMAT = "lintseq"
WRITE_FORMATS = ("lintseq",)

#: Sampling. Temperature 0 is greedy (then extra candidates repeat the first).
TEMPERATURE = 0.0
TOP_P = 0.95
MAX_NEW_TOKENS = 256
CANDIDATES = 1
SEED = 0
#: Sampling where several different answers are the point (CYCLE collection).
SAMPLING_TEMPERATURE = 0.8

#: Repair rounds after round 0.
ROUNDS = 4
#: How a repair round gets its candidates: ``generate`` samples answers from the model; ``rank``
#: enumerates the single-edit repairs of the code (operator, value, variable, function, excess) and
#: tests the ones the model finds likeliest as its answer; ``auto`` is what the model's manifest asks
#: for (its ``repair`` field), else ``generate``.
STRATEGIES = ("auto", "generate", "rank")
STRATEGY = "auto"
