"""The run seam: one configuration, defaults defined once, one error base for every front end."""

from __future__ import annotations

import math

import pytest

from model_runtime import defaults
from model_runtime.errors import EditseqError
from model_runtime.run.config import ConfigError, RunConfig
from model_runtime.run.engine import make_sandbox, write_if_unchanged

pytest_plugins = ["pytester"]


def test_config_defaults_are_the_shared_defaults():
    config = RunConfig()
    assert (config.model, config.backend, config.endpoint, config.device) == (
        defaults.MODEL, defaults.BACKEND, defaults.ENDPOINT, defaults.DEVICE)
    budget = config.budget
    assert (budget.rounds, budget.candidates, budget.max_new_tokens, budget.temperature, budget.top_p, budget.seed) \
        == (defaults.ROUNDS, defaults.CANDIDATES, defaults.MAX_NEW_TOKENS, defaults.TEMPERATURE, defaults.TOP_P,
            defaults.SEED)
    assert budget.seconds is None and config.prompt_format == defaults.PROMPT_FORMAT


@pytest.mark.parametrize("changes, words", [
    ({"backend": "vllm"}, "backend must be one of transformers, openai"),
    ({"backend": "openai", "endpoint": "localhost:8000"}, "http:// or https://"),
    ({"model": " "}, "no model"),
    ({"timeout": 0.0}, "timeout"),
    ({"timeout": math.nan}, "timeout"),
    ({"timeout": math.inf}, "timeout"),
    ({"rounds": -1}, "rounds"),
    ({"candidates": 0}, "candidates"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"temperature": -1.0}, "temperature"),
    ({"prompt_format": "cycle"}, "prompt format"),
])
def test_a_config_that_can_never_work_is_refused_when_made(changes, words):
    with pytest.raises(ConfigError, match=words) as caught:
        RunConfig(**changes)
    assert isinstance(caught.value, EditseqError) and isinstance(caught.value, ValueError)


def test_the_timeout_bounds_each_test_run_wall_clock_and_cpu():
    assert RunConfig().limits == RunConfig().limits.__class__()  # no timeout: the sandbox's own limits
    limits = RunConfig(timeout=30.5).limits
    assert (limits.timeout_s, limits.cpu_s) == (30.5, 30)
    assert RunConfig(timeout=0.2).limits.cpu_s == 1


def test_configs_that_name_the_same_model_share_a_backend():
    assert RunConfig(rounds=1).backend_key == RunConfig(rounds=7, temperature=0.5).backend_key
    assert RunConfig(model="a").backend_key != RunConfig(model="b").backend_key


def test_the_sandbox_gets_the_interpreter_the_limits_and_the_users_pytest_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:cacheprovider")
    monkeypatch.setenv("EDITSEQ_SECRET", "x")
    config = RunConfig(timeout=9.0, python=None, sandbox_env={"EXTRA": "1"})
    sandbox = make_sandbox(config, tmp_path)
    assert sandbox.limits == config.limits
    assert sandbox.env == {"PYTEST_ADDOPTS": "-p no:cacheprovider", "EXTRA": "1"}


def test_write_if_unchanged_keeps_a_file_that_moved_on(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("a = 1\n")
    assert not write_if_unchanged(path, "a = 0\n", "a = 2\n")
    assert path.read_text() == "a = 1\n"
    assert write_if_unchanged(path, "a = 1\n", "a = 2\n")
    assert path.read_text() == "a = 2\n" and [p.name for p in tmp_path.iterdir()] == ["m.py"]


def test_every_front_end_takes_its_defaults_from_one_place():
    from lsp_server.settings import Settings
    from model_runtime.cli import build_parser

    parser = build_parser()
    refine = parser.parse_args(["refine", "f.py::g", "--tests", "t", "--model", "m"])
    generate = parser.parse_args(["generate", "--model", "m", "--prompt", "p"])
    collect = parser.parse_args(["train", "cycle-collect", "--out", "o"])
    for args in (refine, generate, collect):
        assert (args.backend, args.endpoint, args.device, args.max_new_tokens) == (
            defaults.BACKEND, defaults.ENDPOINT, defaults.DEVICE, defaults.MAX_NEW_TOKENS)
    assert (refine.rounds, refine.candidates, refine.temperature) == (
        defaults.ROUNDS, defaults.CANDIDATES, defaults.TEMPERATURE)
    assert (generate.top_p, collect.top_p, collect.temperature, collect.seed) == (
        defaults.TOP_P, defaults.TOP_P, defaults.SAMPLING_TEMPERATURE, defaults.SEED)
    settings = Settings()
    assert (settings.model, settings.backend, settings.endpoint, settings.device, settings.rounds,
            settings.candidates, settings.maxNewTokens, settings.temperature, settings.format) == (
        defaults.MODEL, defaults.BACKEND, defaults.ENDPOINT, defaults.DEVICE, defaults.ROUNDS,
        defaults.CANDIDATES, defaults.MAX_NEW_TOKENS, defaults.TEMPERATURE, defaults.PROMPT_FORMAT)


def test_pytest_options_take_the_shared_defaults(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    config = pytester.parseconfig()  # the plugin is installed: pytest loads it by its entry point
    options = {name: config.getoption(f"editseq_{name}") for name in
               ("rounds", "candidates", "max_new_tokens", "temperature", "device")}
    assert options == {"rounds": defaults.ROUNDS, "candidates": defaults.CANDIDATES,
                       "max_new_tokens": defaults.MAX_NEW_TOKENS, "temperature": defaults.TEMPERATURE,
                       "device": defaults.DEVICE}


def test_every_error_a_user_sees_has_one_base():
    from model_runtime.backends import BackendError, EndpointUnreachable, ModelLoadError
    from model_runtime.corpus.build import CorpusError
    from model_runtime.edits.diff_apply import DiffError
    from model_runtime.edits.repair_diffs import RepairDiffError
    from model_runtime.lintseq.data import InputError
    from model_runtime.prompting.instruction import InstructionTooLong
    from model_runtime.refine.target import RefineError
    from model_runtime.sandbox.runner import SandboxError
    from model_runtime.training.export import ExportError
    from model_runtime.training.sft import TrainingError
    from model_runtime.training.sft_data import DataError

    for kind in (BackendError, EndpointUnreachable, ModelLoadError, CorpusError, DiffError, RepairDiffError,
                 InputError, InstructionTooLong, RefineError, SandboxError, ExportError, TrainingError, DataError,
                 ConfigError):
        assert issubclass(kind, EditseqError), kind
