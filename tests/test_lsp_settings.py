"""Settings: every source merges into one typed object; a bad value is reported and replaced by its default."""

from __future__ import annotations

from lsp_server.settings import DEFAULT_MODEL, Settings, merge_settings, pyproject_settings


def test_camel_case_values_override_defaults_and_ints_widen_to_floats():
    settings, problems = merge_settings(Settings(), {"rounds": 2, "timeout": 30, "testCommand": "tests/"}, "init")
    assert (settings.rounds, settings.timeout, settings.testCommand, problems) == (2, 30.0, "tests/", [])
    assert settings.model == DEFAULT_MODEL


def test_a_bad_value_is_reported_and_falls_back_to_the_default_not_the_previous_value():
    base, _ = merge_settings(Settings(), {"rounds": 7}, "pyproject")
    settings, problems = merge_settings(base, {"rounds": -1, "backend": "gpt", "candidates": True, "nope": 1},
                                        "initializationOptions")
    assert (settings.rounds, settings.backend, settings.candidates) == (4, "transformers", 1)
    assert len(problems) == 4 and all("initializationOptions" in p for p in problems)
    assert "unknown setting 'nope'" in problems[-1]
    assert merge_settings(Settings(), ["not", "an", "object"], "x")[1]


def test_pyproject_section_is_snake_case(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.editseq]\nmax_new_tokens = 64\ntest_command = "tests"\n')
    raw, problems = pyproject_settings(tmp_path)
    settings, more = merge_settings(Settings(), raw, "pyproject", snake_case=True)
    assert (settings.maxNewTokens, settings.testCommand, problems, more) == (64, "tests", [], [])
    (tmp_path / "pyproject.toml").write_text("[tool.editseq\n")
    assert pyproject_settings(tmp_path)[1] and pyproject_settings(tmp_path / "none") == (None, [])
