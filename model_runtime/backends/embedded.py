"""A model shipped inside the package: where it is, and what a model folder's manifest says.

``model = "embedded"`` (:data:`model_runtime.defaults.EMBEDDED_MODEL`, the default
model) names the folder ``model_runtime/embedded_model/``: bf16 safetensors, the
tokenizer, ``MODEL_CARD.md`` and ``manifest.json``, as package data, so that a
plain ``pip install`` has it and nothing is downloaded. An installation that lost
the weights gets a message saying so. Any model folder may carry a
``manifest.json``: ``formats`` lists the prompt formats the model was trained on,
``repair: "rank"`` asks the refine loop to rank single-edit repairs with it. A folder
without one is profiled from its tokenizer (see ``TransformersBackend.profile``):
the public LintSeq models have none and get the ``rewrite`` strategy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from model_runtime import defaults

from .base import ModelLoadError

__all__ = ["MANIFEST", "embedded_model_dir", "read_manifest", "resolve_model", "write_manifest"]

MANIFEST = "manifest.json"
_FOLDER = Path(__file__).resolve().parent.parent / "embedded_model"


def embedded_model_dir() -> Path:
    """The embedded model's folder; :class:`~.base.ModelLoadError` when this installation lacks its weights."""
    if not (_FOLDER / "config.json").is_file() or not any(_FOLDER.glob("*.safetensors")):
        raise ModelLoadError(f"the embedded model is not in this installation ({_FOLDER} has no weights); "
                             "reinstall editseq, or set `model` to a model folder or hub id")
    return _FOLDER


def resolve_model(model: str) -> str:
    """``model`` as a loader takes it: the embedded model's folder for its name, else unchanged."""
    return str(embedded_model_dir()) if model == defaults.EMBEDDED_MODEL else model


def read_manifest(folder: str | os.PathLike[str]) -> dict:
    """A model folder's ``manifest.json`` (``{}`` when it has none); a malformed one is a load error."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read the model's manifest {path}: {exc}") from None
    formats = data.get("formats", []) if isinstance(data, dict) else None
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise ModelLoadError(f"{path}: a manifest is an object whose `formats` is a list of prompt format names")
    return data


def write_manifest(folder: str | os.PathLike[str], formats: list[str] | tuple[str, ...],
                   repair: str | None = None) -> Path:
    """Record in ``folder`` what its model was trained on (training calls this when it saves a model)."""
    data: dict = {"formats": list(formats)}
    if repair:
        data["repair"] = repair
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path
