"""The embedded-model name and model manifests: clear errors, never a download."""

from __future__ import annotations

import pytest

from model_runtime import defaults
from model_runtime.backends import ModelLoadError, TransformersBackend, TransformersConfig
from model_runtime.backends.embedded import read_manifest, resolve_model


def test_other_names_pass_through_and_a_local_folder_of_that_name_stays_a_path():
    assert resolve_model("upiter/TinyCodeLM-150M-LintSeqInstruct") == "upiter/TinyCodeLM-150M-LintSeqInstruct"
    assert resolve_model("./embedded") == "./embedded"


def test_the_embedded_name_without_shipped_weights_is_a_clear_load_error():
    backend = TransformersBackend(TransformersConfig(model=defaults.EMBEDDED_MODEL, device="cpu"))
    with pytest.raises(ModelLoadError, match="embedded model is not in this installation"):
        backend.load()


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
