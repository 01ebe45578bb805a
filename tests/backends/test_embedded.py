"""The embedded default model: shipped as package data within the size limits, loaded by name, never
downloaded; model manifests; answer scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from model_runtime import defaults
from model_runtime.backends import ModelLoadError, TransformersBackend, TransformersConfig
from model_runtime.backends import embedded
from model_runtime.backends.embedded import embedded_model_dir, read_manifest, resolve_model

MiB = 1 << 20


def test_the_default_model_is_the_embedded_one():
    assert defaults.MODEL == defaults.EMBEDDED_MODEL == "embedded"


def test_the_shipped_files_stay_within_the_size_limits_and_say_what_they_are():
    folder = embedded_model_dir()
    files = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "manifest.json", "MODEL_CARD.md"} <= set(files)
    assert max(files.values()) < 16 * MiB and sum(files.values()) <= 64 * MiB
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    manifest = read_manifest(folder)
    assert set(manifest["formats"]) == {"lintseq", "cycle"} and manifest["repair"] == "rank"
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    for section in ("## Data", "## Training", "## Hardware", "## Repair benchmark", "## HumanEval", "## Limits"):
        assert section in card


def test_the_package_data_rule_ships_the_folder():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert 'model_runtime = ["embedded_model/*"]' in pyproject


def test_the_embedded_name_loads_the_shipped_model_and_prefers_ranking():
    backend = TransformersBackend(TransformersConfig(model=defaults.EMBEDDED_MODEL, device="cpu",
                                                     local_files_only=True))
    assert backend.loaded.source == str(embedded_model_dir())
    assert backend.profile().strategy == "rank"


def test_scores_are_log_likelihoods_that_match_one_forward_pass():
    import torch

    backend = TransformersBackend(TransformersConfig(model=defaults.EMBEDDED_MODEL, device="cpu"))
    lm = backend.loaded
    prompt = "def add(a, b):\n    return a - b\n"
    answers = ["@@ -2,1 +2,1 @@\n-    return a - b\n+    return a + b", "x", "@@ -2,1 +2,1 @@\n-    return a - b"]
    scores = backend.score(prompt, answers, batch_size=2)  # two batches, padded rows
    for answer, score in zip(answers, scores):
        p = lm.tokenizer(prompt)["input_ids"]
        a = [*lm.tokenizer(answer, add_special_tokens=False)["input_ids"], lm.eos_ids[0]]
        with torch.inference_mode():
            logp = lm.model(input_ids=torch.tensor([p + a])).logits[0].float().log_softmax(-1)
        expected = sum(logp[len(p) - 1 + i, t].item() for i, t in enumerate(a))
        assert score == pytest.approx(expected, abs=1e-3) and score < 0
    assert backend.score(prompt, []) == []


def test_a_prompt_longer_than_the_context_loses_its_start_not_the_answer():
    backend = TransformersBackend(TransformersConfig(model=defaults.EMBEDDED_MODEL, device="cpu"))
    scores = backend.score("x = 1\n" * 3000, ["@@ -1,1 +1,1 @@\n-x = 1\n+x = 2"])
    assert math.isfinite(scores[0])


def test_without_shipped_weights_the_name_is_a_clear_load_error(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "_FOLDER", tmp_path)  # an installation whose package data went missing
    backend = TransformersBackend(TransformersConfig(model=defaults.EMBEDDED_MODEL, device="cpu"))
    with pytest.raises(ModelLoadError, match="embedded model is not in this installation"):
        backend.load()


def test_other_names_pass_through_and_a_local_folder_of_that_name_stays_a_path():
    assert resolve_model("upiter/TinyCodeLM-150M-LintSeqInstruct") == "upiter/TinyCodeLM-150M-LintSeqInstruct"
    assert resolve_model("./embedded") == "./embedded"


def test_a_manifest_names_the_formats_a_model_was_trained_on(tmp_path):
    assert read_manifest(tmp_path) == {}
    (tmp_path / "manifest.json").write_text('{"formats": ["lintseq", "cycle"]}')
    assert read_manifest(tmp_path)["formats"] == ["lintseq", "cycle"]
    (tmp_path / "manifest.json").write_text('{"formats": "cycle"}')
    with pytest.raises(ModelLoadError, match="formats"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ModelLoadError, match="manifest"):
        read_manifest(tmp_path)
