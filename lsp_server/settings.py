"""The server's settings: one flat, typed object with a default for everything.

Names are the ``editseq`` CLI's flags in camelCase, so one vocabulary covers
the command line, ``initializationOptions``, the ``editseq`` section of
``workspace/configuration`` / ``workspace/didChangeConfiguration``, and
``[tool.editseq]`` (snake_case) in the workspace's ``pyproject.toml``. Later
sources override earlier ones: defaults, pyproject, initializationOptions,
then the client's configuration. A bad value never stops the server: it is
reported (the caller shows the problems with ``window/showMessage``) and the
default is used instead, as jedi-language-server does.

The defaults shared with the CLI and the pytest plugin (model, backend,
sampling, budget) come from :mod:`model_runtime.defaults`, so the three front
ends cannot drift apart; only the server's own knobs (``timeout``,
``resolveTimeout``, ``reportPollInterval``, ``maxFileBytes``) are defined
here. :func:`run_config` turns the settings into the engine's
:class:`~model_runtime.run.config.RunConfig`, the one thing a run is given.
Problems are messages without the ``editseq: `` prefix (the server adds it
when it shows them, :func:`~.protocol.for_user`).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_runtime import defaults
from model_runtime.run.config import RunConfig

__all__ = ["CLIENT_SETTINGS", "DEFAULT_MODEL", "INITIALIZATION_OPTIONS", "PYPROJECT", "TRUST_OPTION", "TRUSTED_ONLY",
           "Settings", "merge_settings", "pyproject_settings", "run_config", "settings_from"]

DEFAULT_MODEL = defaults.MODEL

#: The sources of settings, as the problems name them, in the order they apply (later ones win).
PYPROJECT = "pyproject.toml [tool.editseq]"
INITIALIZATION_OPTIONS = "initializationOptions"
CLIENT_SETTINGS = "the editseq settings"
_SOURCES = ((PYPROJECT, True), (INITIALIZATION_OPTIONS, False), (CLIENT_SETTINGS, False))


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the server, with its default."""

    #: Model folder or hub id (transformers), or the served model name (openai).
    model: str = defaults.MODEL
    backend: str = defaults.BACKEND
    endpoint: str = defaults.ENDPOINT
    device: str = defaults.DEVICE
    #: The prompt format the model speaks: auto (read off the model), lintseq or chat.
    format: str = defaults.PROMPT_FORMAT
    #: How repair rounds find candidates: auto (follow the model), generate, rank or rewrite.
    strategy: str = defaults.STRATEGY
    #: Besides the failing tests, the tests that passed before must still pass: those in the same files
    #: (files), the whole suite (suite), or none (failing).
    verify: str = defaults.VERIFY
    rounds: int = defaults.ROUNDS
    candidates: int = defaults.CANDIDATES
    maxNewTokens: int = defaults.MAX_NEW_TOKENS
    temperature: float = defaults.TEMPERATURE
    #: Seconds for a whole run (model and tests); also each test run's wall-clock limit.
    timeout: float = 120.0
    #: Interpreter for the tests; empty: the workspace's .venv/venv, else PATH's.
    python: str = ""
    #: Test ids or files refined against when the failure report names none (a leading ``pytest`` is fine).
    testCommand: str = ""
    #: Seconds ``codeAction/resolve`` may run before the work moves to a command with progress: well
    #: inside the 10 s after which clients (eglot, Neovim) give up on a request.
    resolveTimeout: float = 4.0
    #: Seconds between looks at the failure report when the client cannot watch files.
    reportPollInterval: float = 1.0
    #: Bigger documents get no code actions (each version is parsed once, in a worker thread, but a huge one
    #: still costs seconds of CPU per keystroke).
    maxFileBytes: int = 500_000


_CHOICES = {"backend": defaults.BACKENDS, "format": defaults.WRITE_FORMATS, "strategy": defaults.STRATEGIES,
            "verify": defaults.VERIFY_SCOPES}
_POSITIVE = {"rounds": 0, "candidates": 1, "maxNewTokens": 1, "timeout": 1e-9, "resolveTimeout": 0,
             "reportPollInterval": 0.05, "maxFileBytes": 1, "temperature": 0}
#: Upper bounds (the engine's, where it has one): no setting may tie the machine up for ever.
_MAXIMUM = {"rounds": defaults.LIMITS["rounds"], "candidates": defaults.LIMITS["candidates"],
            "maxNewTokens": defaults.LIMITS["max_new_tokens"], "timeout": defaults.LIMITS["timeout"],
            "temperature": defaults.LIMITS["temperature"], "resolveTimeout": 3600.0, "reportPollInterval": 3600.0,
            "maxFileBytes": 50_000_000}
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _snake_to_camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _check(name: str, value: Any) -> Any:
    """The value as the field's type, or ``ValueError`` saying what is wrong."""
    default = _FIELDS[name].default
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ValueError(f"{value!r} is not one of {', '.join(_CHOICES[name])}")
    if kind is float and value != value:
        raise ValueError("must be a number, got NaN")
    if name in _POSITIVE and value < _POSITIVE[name]:
        raise ValueError(f"must be at least {_POSITIVE[name]}, got {value!r}")
    if name in _MAXIMUM and value > _MAXIMUM[name]:
        raise ValueError(f"must be at most {_MAXIMUM[name]}, got {value!r}")
    if kind is str and name in ("model", "backend", "endpoint", "device") and not value.strip():
        raise ValueError("must not be empty")
    return value


def merge_settings(base: Settings, raw: Any, source: str, *, snake_case: bool = False) -> tuple[Settings, list[str]]:
    """``base`` updated from the mapping ``raw``; problems are messages naming ``source``.

    Unknown names are reported (a typo should not be silently ignored); a bad
    value keeps the *default*, not ``base``'s value, so that the result does
    not depend on which source was read first.
    """
    if raw is None:
        return base, []
    if not isinstance(raw, dict):
        return base, [f"settings from {source} must be an object, got {type(raw).__name__}"]
    changes, problems = {}, []
    for key, value in raw.items():
        name = _snake_to_camel(key) if snake_case else key
        if name not in _FIELDS:
            problems.append(f"unknown setting {key!r} in {source} (ignored)")
            continue
        if value is None:
            continue
        try:
            changes[name] = _check(name, value)
        except ValueError as exc:
            default = _FIELDS[name].default
            problems.append(f"bad setting {key!r} in {source}: {exc}; using the default {default!r}")
            changes[name] = default
    return dataclasses.replace(base, **changes), problems


#: Settings that choose what runs or where code is sent: a workspace's own pyproject.toml may set
#: them only when the client says the user trusts the workspace.
TRUSTED_ONLY = ("model", "backend", "endpoint", "python", "testCommand")
#: The initializationOptions key a client sets to say so (VS Code: Workspace Trust; Neovim: an option).
TRUST_OPTION = "trustedWorkspace"


def settings_from(sources: dict[str, Any]) -> tuple[Settings, list[str]]:
    """The settings from every source in ``sources`` (raw values by source name), merged in order.

    A cloned repository must not pick the model, the endpoint the user's code
    goes to, or the interpreter the server runs: unless the initialization
    options say ``trustedWorkspace: true``, those keys of ``[tool.editseq]``
    are dropped, with one message naming them.
    """
    settings, problems = Settings(), []
    options = sources.get(INITIALIZATION_OPTIONS)
    trusted = isinstance(options, dict) and options.get(TRUST_OPTION) is True
    for source, snake in _SOURCES:
        raw = sources.get(source)
        if source == INITIALIZATION_OPTIONS and isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if k != TRUST_OPTION}
        if source == PYPROJECT and isinstance(raw, dict) and not trusted:
            kept = {k: v for k, v in raw.items() if _snake_to_camel(k) not in TRUSTED_ONLY}
            if len(kept) < len(raw):
                dropped = ", ".join(k for k in raw if k not in kept)
                problems.append(f"ignored {dropped} from {PYPROJECT}: settings that choose what runs or where "
                                "code is sent apply only in a trusted workspace (VS Code: trust the folder; "
                                "Neovim: setup({ trust_workspace = true }))")
            raw = kept
        settings, found = merge_settings(settings, raw, source, snake_case=snake)
        problems += found
    return settings, problems


def pyproject_settings(root: Path | None) -> tuple[dict[str, Any] | None, list[str]]:
    """``[tool.editseq]`` of ``root/pyproject.toml`` (``None`` if absent) and any problem reading it."""
    if root is None:
        return None, []
    path = root / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, [f"cannot read {path}: {exc}"]
    section = data.get("tool", {}).get("editseq")
    return section, []


def run_config(settings: Settings) -> RunConfig:
    """What one run is given: the engine's :class:`RunConfig` for ``settings``.

    Raises :class:`~model_runtime.run.config.ConfigError` for a combination no
    single setting's check catches (an ``openai`` backend whose endpoint is no URL).
    """
    return RunConfig(model=settings.model, backend=settings.backend, endpoint=settings.endpoint,
                     device=settings.device, rounds=settings.rounds, candidates=settings.candidates,
                     max_new_tokens=settings.maxNewTokens, temperature=settings.temperature,
                     timeout=settings.timeout, python=settings.python or None, prompt_format=settings.format,
                     strategy=settings.strategy, verify=settings.verify)
