"""Settings: every source merges into one typed object; a bad value is reported and replaced by its default.

The defaults are the engine's (:mod:`model_runtime.defaults`), and the settings
reach a run as one :class:`~model_runtime.run.config.RunConfig`.
"""

from __future__ import annotations

import pytest

from lsp_server.model_host import ModelUnavailable
from lsp_server.protocol import RunFailed, for_user
from lsp_server.settings import (
    CLIENT_SETTINGS,
    INITIALIZATION_OPTIONS,
    PYPROJECT,
    Settings,
    merge_settings,
    pyproject_settings,
    run_config,
    settings_from,
)
from model_runtime import defaults
from model_runtime.errors import EditseqError
from model_runtime.run.config import ConfigError, RunConfig


def test_camel_case_values_override_defaults_and_ints_widen_to_floats():
    settings, problems = merge_settings(Settings(), {"rounds": 2, "timeout": 30, "testCommand": "tests/"}, "init")
    assert (settings.rounds, settings.timeout, settings.testCommand, problems) == (2, 30.0, "tests/", [])
    assert settings.model == defaults.MODEL


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


def test_later_sources_win_and_problems_name_their_source():
    settings, problems = settings_from({PYPROJECT: {"max_new_tokens": 64, "rounds": 2},
                                        INITIALIZATION_OPTIONS: {"rounds": 3}, CLIENT_SETTINGS: {"rounds": "x"}})
    assert (settings.maxNewTokens, settings.rounds) == (64, defaults.ROUNDS)
    assert problems == [f"bad setting 'rounds' in {CLIENT_SETTINGS}: expected int, got str 'x'; "
                        f"using the default {defaults.ROUNDS}"]


def test_defaults_and_choices_are_the_engines():
    settings = Settings()
    assert (settings.model, settings.backend, settings.endpoint, settings.device, settings.format) == (
        defaults.MODEL, defaults.BACKEND, defaults.ENDPOINT, defaults.DEVICE, defaults.PROMPT_FORMAT)
    assert (settings.rounds, settings.candidates, settings.maxNewTokens, settings.temperature) == (
        defaults.ROUNDS, defaults.CANDIDATES, defaults.MAX_NEW_TOKENS, defaults.TEMPERATURE)
    for backend in defaults.BACKENDS:
        assert merge_settings(Settings(), {"backend": backend}, "x") == (Settings(backend=backend), [])
    assert "is not one of auto, lintseq, chat" in merge_settings(Settings(), {"format": "cycle"}, "x")[1][0]
    assert merge_settings(Settings(), {"format": "chat", "strategy": "rewrite"}, "x") == (
        Settings(format="chat", strategy="rewrite"), [])
    assert "is not one of auto, generate, rank, rewrite" in merge_settings(Settings(), {"strategy": "x"}, "x")[1][0]


def test_run_config_carries_every_run_setting():
    settings, _ = merge_settings(Settings(), {
        "model": "/m", "backend": "openai", "endpoint": "https://h/v1", "device": "cpu", "rounds": 2,
        "candidates": 3, "maxNewTokens": 64, "temperature": 0.5, "timeout": 30, "python": "/py", "format": "lintseq",
        "strategy": "rewrite", "testCommand": "tests", "resolveTimeout": 1.0}, "x")
    assert run_config(settings) == RunConfig(
        model="/m", backend="openai", endpoint="https://h/v1", device="cpu", rounds=2, candidates=3,
        max_new_tokens=64, temperature=0.5, timeout=30.0, python="/py", prompt_format="lintseq",
        strategy="rewrite")
    plain = run_config(Settings())
    assert plain.python is None and plain.timeout == 120.0 and plain.backend_key == RunConfig().backend_key
    # Only the model's identity keys the loaded backend: a budget change reuses it.
    assert run_config(Settings(rounds=1, timeout=5.0)).backend_key == plain.backend_key
    with pytest.raises(ConfigError, match="endpoint"):
        run_config(Settings(backend="openai", endpoint="localhost:8000"))


def test_every_error_the_server_shows_is_an_editseq_error_shown_with_one_prefix():
    assert issubclass(RunFailed, EditseqError) and issubclass(ModelUnavailable, EditseqError)
    assert for_user(RunFailed("no workspace folder")) == "editseq: no workspace folder"
    assert for_user(ConfigError("bad")) == "editseq: bad"


def test_a_workspace_chooses_what_runs_only_when_the_client_trusts_it():
    """A cloned repository's [tool.editseq] could send the user's code to its endpoint or run its own
    interpreter on the first refine; now those keys need the client's word that the folder is trusted."""
    hostile = {"backend": "openai", "endpoint": "https://collect.example/v1", "model": "/repo/weights",
               "python": "/repo/evil-python", "test_command": "tests", "rounds": 2}
    settings, problems = settings_from({PYPROJECT: hostile, INITIALIZATION_OPTIONS: {}})
    assert (settings.backend, settings.endpoint, settings.model, settings.python, settings.testCommand) == (
        defaults.BACKEND, defaults.ENDPOINT, defaults.MODEL, "", "")
    assert settings.rounds == 2  # the budget is still the workspace's to set
    assert len(problems) == 1 and "backend, endpoint, model, python, test_command" in problems[0]
    assert "trusted workspace" in problems[0]
    settings, problems = settings_from({PYPROJECT: hostile, INITIALIZATION_OPTIONS: {"trustedWorkspace": True}})
    assert (settings.backend, settings.python, problems) == ("openai", "/repo/evil-python", [])
    # The user's own settings are never filtered.
    settings, problems = settings_from({INITIALIZATION_OPTIONS: {"python": "/usr/bin/python3"}})
    assert settings.python == "/usr/bin/python3" and problems == []


@pytest.mark.parametrize(("name", "value"), [
    ("candidates", 10**6), ("rounds", 2**70), ("maxNewTokens", 10**12), ("timeout", 1e30),
    ("timeout", float("nan")), ("temperature", float("nan")), ("maxFileBytes", 10**15),
])
def test_every_number_is_bounded_and_nan_is_refused(name, value):
    settings, problems = merge_settings(Settings(), {name: value}, "x")
    assert getattr(settings, name) == getattr(Settings(), name) and len(problems) == 1, problems
    run_config(settings)  # the defaults make a valid run


@pytest.mark.parametrize("values", [
    {"temperature": float("nan")}, {"timeout": float("nan")}, {"timeout": 1e30}, {"rounds": 2**70},
    {"candidates": 10**6}, {"max_new_tokens": 10**12},
])
def test_the_engine_bounds_what_any_front_end_passes(values):
    with pytest.raises(ConfigError):
        RunConfig(**values)
