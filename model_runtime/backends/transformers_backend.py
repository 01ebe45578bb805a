"""In-process generation with Hugging Face transformers.

Loads a causal LM from a local folder or a hub id (``from_pretrained`` may
download on a user's machine; ``local_files_only`` forbids it), on the best
device available (CUDA, then MPS, then CPU) in the dtype that is fast there
(bf16 on a GPU; fp32 on a CPU, where bf16 without native support is slower).
All ``k`` candidates of a request are one batched ``generate`` call
(``num_return_sequences``), with the KV cache on and under
``torch.inference_mode``. :meth:`TransformersBackend.score` gives the
log-likelihood of given answers instead (the prompt runs once; its KV cache
is shared by batches of answers), which the refine loop's ``rank`` strategy
uses to order candidate edits.

A process holds one instance of each model (a cache keyed by source,
device and dtype), however many backends or server threads use it. A lock
around ``generate`` lets a server call it from any thread: requests queue
for the model instead of interleaving on it, and the seed set for one request
cannot leak into another.

torch and transformers are imported on first use, never at import time.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from model_runtime.edits.editpath import DIFF_TOKEN

from .base import (
    BackendOutOfMemory,
    DoneEvent,
    GenerationRequest,
    GenerationResult,
    MissingDiffToken,
    ModelLoadError,
    ModelProfile,
    StreamEvent,
)
from .streaming import CandidateTracker, Emit, iterate_in_thread

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "TransformersBackend", "TransformersConfig", "answer_scores", "load_model",
           "prompt_forward", "render_chat", "resolve_device"]

_DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True, slots=True)
class TransformersConfig:
    """Which model, where.

    ``device`` is ``auto`` or a torch device (``cuda:1``); ``dtype`` is ``auto``
    or one of float32, bfloat16, float16.
    """

    model: str
    device: str = "auto"
    dtype: str = "auto"
    #: Never contact the hub (set ``HF_HUB_OFFLINE=1`` for the same effect process-wide).
    local_files_only: bool = False


@dataclass(slots=True)
class LoadedModel:
    """A model in memory with what generation needs to know about its tokenizer."""

    source: str
    model: object
    tokenizer: object
    device: str
    dtype: str
    #: ``None`` for a chat model (a chat template, no ``<|diff|>`` token).
    diff_id: int | None
    eos_ids: tuple[int, ...]
    pad_id: int
    lock: threading.Lock = field(default_factory=threading.Lock)


_MODELS: dict[tuple[str, str, str], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def resolve_device(device: str = "auto") -> str:
    """``auto`` is CUDA when available, then Apple's MPS, then the CPU."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested, but CUDA is not available here")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("device 'mps' requested, but MPS is not available here")
    return device


def _resolve_dtype(dtype: str, device: str) -> str:
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float16" if device == "mps" else "float32"
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use auto or one of {', '.join(_DTYPES)}")
    return dtype


def load_model(config: TransformersConfig) -> LoadedModel:
    """The process-wide instance of ``config``'s model, loading it on first use."""
    from .embedded import resolve_model

    source = os.path.expanduser(resolve_model(config.model))
    if os.path.isdir(source):
        source = os.path.realpath(source)
    elif os.path.isabs(source) or source.startswith("."):  # a path, not a hub id
        raise ModelLoadError(f"model folder {config.model!r} does not exist")
    device = resolve_device(config.device)
    dtype = _resolve_dtype(config.dtype, device)
    key = (source, device, dtype)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            loaded = _MODELS[key] = _load(source, device, dtype, config.local_files_only)
        return loaded


#: The lowest releases that load what this backend loads (pyproject.toml's floors, tested by scripts/floors.sh):
#: transformers refuses ``torch.load`` of pickled weights below torch 2.6 (the public LintSeq models ship
#: ``pytorch_model.bin``) and takes ``from_pretrained(dtype=...)`` from 4.56 on.
FLOORS = {"torch": "2.6", "transformers": "4.56"}


def _check_floors() -> None:
    """A clear error instead of a raw ``TypeError`` deep in transformers when the environment is too old."""
    import torch
    import transformers
    from packaging.version import Version

    found = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__}
    old = [f"{name} {found[name]} (needs >= {floor})" for name, floor in FLOORS.items()
           if Version(found[name]) < Version(floor)]
    if old:
        raise ModelLoadError(f"this environment is too old for editseq's model loading: {', '.join(old)}; "
                             f"pip install -U 'torch>={FLOORS['torch']}' 'transformers>={FLOORS['transformers']}'")


def _load(source: str, device: str, dtype: str, local_files_only: bool) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_floors()

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of model {source!r}: {exc}") from exc
    diff_id = tokenizer.get_vocab().get(DIFF_TOKEN)
    if diff_id is None and not getattr(tokenizer, "chat_template", None):
        raise MissingDiffToken(
            f"model {source!r}: its tokenizer has neither a {DIFF_TOKEN} token nor a chat template, so the "
            "model speaks neither the LintSeq edit format nor chat; use a LintSeq or an instruct model"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, dtype), local_files_only=local_files_only
        )
        model.to(device).eval()
    except Exception as exc:
        if _is_oom(exc):
            _release(device)
            raise BackendOutOfMemory(f"out of memory loading model {source!r} on {device} ({dtype})") from exc
        if isinstance(exc, (OSError, ValueError, RuntimeError)):
            raise ModelLoadError(f"cannot load model {source!r}: {exc}") from exc
        raise
    configured = model.generation_config.eos_token_id
    configured = [] if configured is None else [configured] if isinstance(configured, int) else configured
    eos_ids = tuple(i for i in dict.fromkeys([*configured, tokenizer.eos_token_id]) if i is not None)
    if not eos_ids:
        raise ModelLoadError(f"model {source!r} has no end-of-text token")
    pad_id = next(
        (i for i in (tokenizer.pad_token_id, model.generation_config.pad_token_id) if i is not None),
        eos_ids[0],
    )
    return LoadedModel(source, model, tokenizer, device, dtype, diff_id, eos_ids, pad_id)


def render_chat(tokenizer, messages: Sequence[tuple[str, str]]) -> str:
    """``(role, content)`` messages as the model's chat template writes them, ready for the answer.

    Templates that reject a system role (Gemma's raise) get the system text at
    the top of the first user message instead.
    """
    from jinja2.exceptions import TemplateError

    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError("the model's tokenizer has no chat template, so it cannot take chat messages; "
                             "use the lintseq format")
    turns = [{"role": role, "content": content} for role, content in messages]
    try:
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        if not turns or turns[0]["role"] != "system" or len(turns) < 2:
            raise
        merged = [{"role": "user", "content": f"{turns[0]['content']}\n\n{turns[1]['content']}"}, *turns[2:]]
        return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _release(device: str) -> None:
    """Give cached blocks back after an out-of-memory error so the next request can fit."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps":
        torch.mps.empty_cache()


def _cache_argument(model) -> str:
    """transformers >= 5.2x calls the KV cache ``cache``; earlier releases ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def prompt_forward(model, prompt_ids: Sequence[int]):
    """The prompt's forward pass with its KV cache, for :func:`answer_scores`."""
    import torch

    device = next(model.parameters()).device
    return model(input_ids=torch.tensor([list(prompt_ids)], device=device), use_cache=True)


def answer_scores(model, head, prompt_length: int, answers: Sequence[Sequence[int]], pad_id: int, *,
                  copy_cache: bool = False):
    """Summed log-likelihood of each answer (token ids) after the prompt of ``head``, as a 1-D tensor.

    ``head`` is :func:`prompt_forward`'s output; its KV cache is repeated for
    the answers (copied first with ``copy_cache``, so that ``head`` serves more
    batches). Differentiable outside ``inference_mode``: rank training
    (:mod:`model_runtime.training.rank_training`) trains on exactly these scores.
    """
    import torch

    device = head.logits.device
    cache_arg = _cache_argument(model)
    cache = copy.deepcopy(head[cache_arg]) if copy_cache else head[cache_arg]
    cache.batch_repeat_interleave(len(answers))
    width = max(len(a) for a in answers)
    ids = torch.full((len(answers), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(answers), prompt_length + width), dtype=torch.long)
    mask[:, :prompt_length] = 1
    for row, answer in enumerate(answers):
        ids[row, :len(answer)] = torch.tensor(list(answer))
        mask[row, prompt_length:prompt_length + len(answer)] = 1
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=True,
                   **{cache_arg: cache}).logits
    first = head.logits[0, -1].float().log_softmax(-1)
    logp = logits.float().log_softmax(-1)
    scores = []
    for row, answer in enumerate(answers):
        score = first[answer[0]]
        if len(answer) > 1:
            targets = torch.tensor(list(answer[1:]), device=device)[:, None]
            score = score + logp[row, :len(answer) - 1].gather(-1, targets).sum()
        scores.append(score)
    return torch.stack(scores)


class TransformersBackend:
    """The :class:`~.base.Backend` for a local transformers model."""

    name = "transformers"

    def __init__(self, config: TransformersConfig | str) -> None:
        self.config = TransformersConfig(config) if isinstance(config, str) else config
        self._loaded: LoadedModel | None = None

    def load(self) -> None:
        self._loaded = load_model(self.config)

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self.load()
        return self._loaded

    def profile(self) -> ModelProfile:
        """What the model speaks: its folder's manifest when it has one, else what its tokenizer shows.

        Without a manifest, a chat template means an instruct model (asked in
        chat) and a ``<|diff|>`` token a LintSeq model (the public
        ``TinyCodeLM-*-LintSeqInstruct`` ones: they write from an empty file
        and were never tuned to repair).
        """
        from .embedded import read_manifest

        lm = self.loaded
        manifest = read_manifest(lm.source) if os.path.isdir(lm.source) else {}
        if manifest.get("formats"):
            repair = manifest.get("repair")
            return ModelProfile(tuple(manifest["formats"]), repair if isinstance(repair, str) else None, "manifest")
        formats = ("chat",) if getattr(lm.tokenizer, "chat_template", None) else ()
        if lm.diff_id is not None:
            formats += ("lintseq",)
        return ModelProfile(formats, None, "tokenizer")

    def score(self, prompt: str, answers: Sequence[str], cancel: threading.Event | None = None, *,
              batch_size: int = 16) -> list[float]:
        """log P(answer + end-of-text | prompt) for each answer, in nats (``-inf`` where cancelled).

        The prompt runs once and its KV cache is copied for each batch of
        answers. When prompt and answer exceed the model's context, the prompt
        loses tokens from its start (the instruction), never the code.
        """
        import torch

        lm = self.loaded
        if not answers:
            return []
        eos = lm.eos_ids[0]
        encoded = [[*lm.tokenizer(a, add_special_tokens=False)["input_ids"], eos] for a in answers]
        prompt_ids = lm.tokenizer(prompt)["input_ids"]
        context = getattr(lm.model.config, "max_position_embeddings", None) or 1 << 30
        longest = max(len(ids) for ids in encoded)
        if longest >= context:  # an answer alone fills the context: score what fits after one prompt token
            encoded = [ids[:context - 1] for ids in encoded]
            longest = context - 1
        prompt_ids = prompt_ids[-(context - longest):] or [eos]
        scores = [-math.inf] * len(answers)
        order = sorted(range(len(answers)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
        with lm.lock, torch.inference_mode():
            try:
                head = prompt_forward(lm.model, prompt_ids)
                for start in range(0, len(order), batch_size):
                    if cancel is not None and cancel.is_set():
                        break
                    rows = order[start:start + batch_size]
                    batch = answer_scores(lm.model, head, len(prompt_ids), [encoded[i] for i in rows], lm.pad_id,
                                          copy_cache=True)
                    for i, value in zip(rows, batch.tolist()):
                        scores[i] = value
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                _release(lm.device)
                raise BackendOutOfMemory(f"out of memory scoring {len(answers)} answers with model "
                                         f"{lm.source!r} on {lm.device}") from exc
        return scores

    def generate(self, request: GenerationRequest, cancel: threading.Event | None = None) -> GenerationResult:
        return self._run(request, [] if cancel is None else [cancel], None, False)

    def stream(
        self,
        request: GenerationRequest,
        cancel: threading.Event | None = None,
        *,
        text_deltas: bool = False,
    ) -> Iterator[StreamEvent]:
        if self._loaded is None:  # load errors surface here, not in the worker thread
            self.load()
        cancels = [] if cancel is None else [cancel]
        return iterate_in_thread(
            lambda emit, abandoned: self._run(request, [*cancels, abandoned], emit, text_deltas)
        )

    def _run(
        self,
        request: GenerationRequest,
        cancels: Sequence[threading.Event],
        emit: Emit | None,
        text_deltas: bool,
    ) -> GenerationResult:
        import torch
        from transformers import StoppingCriteriaList

        from ._hf_hooks import TokenWatcher

        lm = self.loaded
        prompt = render_chat(lm.tokenizer, request.messages) if request.messages else request.prompt
        # A chat template already holds the special tokens it wants (BOS among them).
        # No token_type_ids: transformers < 5 hands every tokenizer output to generate, which refuses them.
        encoded = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=not request.messages,
                               return_token_type_ids=False).to(lm.device)
        encoded, max_new = _fit_context(encoded, request.max_new_tokens, request.min_new_tokens,
                                        getattr(lm.model.config, "max_position_embeddings", None))
        trackers = [CandidateTracker(i, request.stop, emit, text_deltas) for i in range(request.k)]
        rows = [trackers] if request.greedy else [[t] for t in trackers]
        watcher = TokenWatcher(lm.tokenizer, rows, lm.eos_ids, cancels)
        options = {"do_sample": False}
        if not request.greedy:  # top_k=0: no top-k cut, as in the OpenAI API (HF's default is 50)
            options = {"do_sample": True, "temperature": request.temperature, "top_p": request.top_p}
            options["top_k"] = 0
        with lm.lock:
            if request.seed is not None:
                torch.manual_seed(request.seed)
            start = time.perf_counter()
            try:
                with torch.inference_mode():
                    lm.model.generate(
                        **encoded,
                        max_new_tokens=max_new,
                        min_new_tokens=min(request.min_new_tokens, max_new),
                        num_return_sequences=len(rows),
                        eos_token_id=list(lm.eos_ids),
                        pad_token_id=lm.pad_id,
                        use_cache=True,
                        stopping_criteria=StoppingCriteriaList([watcher]),
                        **options,
                    )
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                _release(lm.device)
                raise BackendOutOfMemory(
                    f"out of memory generating {request.k} x {request.max_new_tokens} tokens "
                    f"with model {lm.source!r} on {lm.device}"
                ) from exc
            seconds = time.perf_counter() - start
        watcher.finish("cancelled" if watcher.cancelled else "length")
        result = GenerationResult(
            completions=tuple(t.completion for t in trackers),
            prompt_tokens=int(encoded["input_ids"].shape[1]),
            seconds=seconds,
        )
        if emit is not None:
            emit(DoneEvent(result))
        return result


def _fit_context(encoded, max_new_tokens: int, min_new_tokens: int, context: int | None):
    """The prompt and the new-token budget cut to the model's context (``max_position_embeddings``).

    Past its context a model's answers are noise (and transformers warns on
    every call), so the budget stops where the context ends; a prompt that
    leaves no room for ``min_new_tokens`` keeps its tail (the code and the
    failure are at the end), as llama.cpp shifts its context, and the log says so.
    """
    length = int(encoded["input_ids"].shape[1])
    if not context or length + max_new_tokens <= context:
        return encoded, max_new_tokens
    room = max(min_new_tokens, min(max_new_tokens, context // 4))
    if context - length >= min_new_tokens:
        return encoded, context - length
    keep = context - room
    log.warning("the prompt (%d tokens) leaves no room in the model's %d-token context: its first %d tokens "
                "are left out", length, context, length - keep)
    return {name: value[:, -keep:] for name, value in encoded.items()}, room
