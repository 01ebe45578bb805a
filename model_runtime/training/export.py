"""Shipping a trained model: bf16 safetensors in shards small enough for size-limited stores.

The default model has to travel as a small artifact (the issue's budget:
64 MiB in all, no file over 16 MiB), so training's fp32 folder is rewritten
in bf16 — half the bytes; the backends upcast on CPUs without native bf16 —
in shards of at most ``max_shard_mb`` megabytes, with the tokenizer beside
it. The result is checked against the limits *before* it replaces anything:
the export goes to a temporary folder first and is moved into place only
when every file fits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from model_runtime.errors import EditseqError

__all__ = ["ExportError", "ExportReport", "export_model"]

MIB = 1024 * 1024


class ExportError(EditseqError):
    """The model does not load, or the export does not fit the limits."""


@dataclass(frozen=True, slots=True)
class ExportReport:
    out: Path
    parameters: int
    dtype: str
    files: tuple[tuple[str, int], ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def largest(self) -> tuple[str, int]:
        return max(self.files, key=lambda item: item[1])


def _normal_permissions(folder: Path) -> None:
    """A shipped model is read by others: the folder and files get the umask's usual modes, not
    the private ones a temporary folder (and some writers) use."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _portable_tokenizer_class(folder: Path) -> None:
    """Name the tokenizer class every supported transformers release knows.

    transformers 5 saves ``"tokenizer_class": "TokenizersBackend"``, a name 4.x
    (down to the 4.56 floor) cannot load; ``PreTrainedTokenizerFast`` is the same
    class under the name both know, so an export loads wherever editseq installs.
    """
    import json

    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def export_model(source: str | os.PathLike, out: str | os.PathLike, *, dtype: str = "bf16",
                 max_shard_mb: float = 15, max_file_mib: float = 16, max_total_mib: float = 64) -> ExportReport:
    """Write ``source`` (a model folder or checkpoint) to ``out`` in ``dtype`` shards; ExportError if too big.

    ``max_shard_mb`` is in the decimal megabytes ``save_pretrained`` counts
    (15 MB = 14.3 MiB, safely under a 16 MiB limit with the header).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in _DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
    if max_shard_mb <= 0:
        raise ExportError("max_shard_mb must be positive")
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, _DTYPES[dtype]))
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"cannot load a model from {source}: {' '.join(str(exc).split())[:300]}") from None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not an export folder; choose a folder (it is replaced)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot make the folder for {out}: {exc.strerror or exc}") from None
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        model.save_pretrained(staging, max_shard_size=int(max_shard_mb * 10**6))
        tokenizer.save_pretrained(staging)
        _portable_tokenizer_class(staging)
        manifest = Path(source) / "manifest.json"  # the prompt formats and repair strategy it was trained for
        if manifest.is_file():
            shutil.copyfile(manifest, staging / manifest.name)
        files = tuple(sorted((p.name, p.stat().st_size) for p in staging.iterdir() if p.is_file()))
        too_big = [(name, size) for name, size in files if size > max_file_mib * MIB]
        total = sum(size for _, size in files)
        if too_big:
            name, size = too_big[0]
            raise ExportError(f"{name} is {size / MIB:.1f} MiB, over the {max_file_mib:g} MiB file limit; "
                              "lower max_shard_mb")
        if total > max_total_mib * MIB:
            raise ExportError(f"the export is {total / MIB:.1f} MiB, over the {max_total_mib:g} MiB limit "
                              f"({model.num_parameters() / 1e6:.1f}M parameters in {dtype}); use a smaller model")
        _normal_permissions(staging)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(out, model.num_parameters(), dtype, files)
