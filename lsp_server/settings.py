"""The server's settings: one flat, typed object with a default for everything.

Names are the ``editseq`` CLI's flags in camelCase, so one vocabulary covers
the command line, ``initializationOptions``, the ``editseq`` section of
``workspace/configuration`` / ``workspace/didChangeConfiguration``, and
``[tool.editseq]`` (snake_case) in the workspace's ``pyproject.toml``. Later
sources override earlier ones: defaults, pyproject, initializationOptions,
then the client's configuration. A bad value never stops the server: it is
reported (the caller shows the problems with ``window/showMessage``) and the
default is used instead, as jedi-language-server does.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MODEL", "Settings", "merge_settings", "pyproject_settings"]

DEFAULT_MODEL = "upiter/TinyCodeLM-150M-LintSeqInstruct"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the server, with its default."""

    #: Model folder or hub id (transformers), or the served model name (openai).
    model: str = DEFAULT_MODEL
    backend: str = "transformers"
    endpoint: str = "http://127.0.0.1:8000/v1"
    device: str = "auto"
    #: Prompt format for writing a function; repairs always use ``cycle``.
    format: str = "lintseq"
    rounds: int = 4
    candidates: int = 1
    maxNewTokens: int = 256
    temperature: float = 0.0
    #: Seconds for a whole run (model and tests); also each test run's wall-clock limit.
    timeout: float = 120.0
    #: Interpreter for the tests; empty: the workspace's .venv/venv, else PATH's.
    python: str = ""
    #: Test ids or files refined against when the failure report names none (a leading ``pytest`` is fine).
    testCommand: str = ""
    #: Seconds ``codeAction/resolve`` may run before the work moves to a command with progress.
    resolveTimeout: float = 10.0
    #: Seconds between looks at the failure report when the client cannot watch files.
    reportPollInterval: float = 1.0
    #: Bigger documents get no code actions (parsing them would stall every request).
    maxFileBytes: int = 1_000_000


_CHOICES = {"backend": ("transformers", "openai"), "format": ("lintseq",)}
_POSITIVE = {"rounds": 0, "candidates": 1, "maxNewTokens": 1, "timeout": 1e-9, "resolveTimeout": 0,
             "reportPollInterval": 0.05, "maxFileBytes": 1, "temperature": 0}
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
    if name in _POSITIVE and value < _POSITIVE[name]:
        raise ValueError(f"must be at least {_POSITIVE[name]}, got {value!r}")
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
        return base, [f"editseq settings from {source} must be an object, got {type(raw).__name__}"]
    changes, problems = {}, []
    for key, value in raw.items():
        name = _snake_to_camel(key) if snake_case else key
        if name not in _FIELDS:
            problems.append(f"editseq: unknown setting {key!r} in {source} (ignored)")
            continue
        if value is None:
            continue
        try:
            changes[name] = _check(name, value)
        except ValueError as exc:
            default = _FIELDS[name].default
            problems.append(f"editseq: bad setting {key!r} in {source}: {exc}; using the default {default!r}")
            changes[name] = default
    return dataclasses.replace(base, **changes), problems


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
        return None, [f"editseq: cannot read {path}: {exc}"]
    section = data.get("tool", {}).get("editseq")
    return section, []
