"""Generation backends behind one interface (:class:`~.base.Backend`).

``transformers`` runs a model in this process; ``openai`` talks to any
OpenAI-compatible server (``/v1/completions``, and ``/v1/chat/completions``
for chat models: vLLM for scale-out, llama.cpp's server, Ollama, LM Studio). The
backend classes are loaded on first access, so importing this package costs
neither torch nor httpx. :mod:`.openai_server` is a small OpenAI-compatible
server of our own over the transformers backend.

May import: ``edits`` (the diff separator), ``defaults``, ``errors``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from model_runtime import defaults

from .base import (
    Backend,
    BackendError,
    BackendOutOfMemory,
    CandidateEvent,
    Completion,
    DoneEvent,
    EditEvent,
    EndpointError,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
    GenerationRequest,
    GenerationResult,
    MalformedResponse,
    MissingDiffToken,
    ModelLoadError,
    ModelProfile,
    StreamEvent,
    TextEvent,
)

if TYPE_CHECKING:
    from .openai_backend import OpenAIBackend, OpenAIConfig
    from .transformers_backend import TransformersBackend, TransformersConfig

_LAZY = {
    "TransformersBackend": ".transformers_backend",
    "TransformersConfig": ".transformers_backend",
    "OpenAIBackend": ".openai_backend",
    "OpenAIConfig": ".openai_backend",
}

__all__ = [
    "Backend",
    "BackendError",
    "BackendOutOfMemory",
    "CandidateEvent",
    "Completion",
    "DoneEvent",
    "EditEvent",
    "EndpointError",
    "EndpointHTTPError",
    "EndpointTimeout",
    "EndpointUnreachable",
    "GenerationRequest",
    "GenerationResult",
    "MalformedResponse",
    "MissingDiffToken",
    "ModelLoadError",
    "ModelProfile",
    "OpenAIBackend",
    "OpenAIConfig",
    "StreamEvent",
    "TextEvent",
    "TransformersBackend",
    "TransformersConfig",
    "make_backend",
]


def make_backend(kind: str, model: str, *, endpoint: str = defaults.ENDPOINT,
                 device: str = defaults.DEVICE) -> Backend:
    """The backend of ``kind`` for ``model`` (front ends reach it through :mod:`model_runtime.run.engine`).

    ``kind`` is ``transformers`` (``model`` is a folder or hub id, run on
    ``device``) or ``openai`` (``model`` is the served name at ``endpoint``).
    """
    if kind == "openai":
        from .openai_backend import OpenAIBackend, OpenAIConfig

        return OpenAIBackend(OpenAIConfig(base_url=endpoint, model=model))
    if kind == "transformers":
        from .transformers_backend import TransformersBackend, TransformersConfig

        return TransformersBackend(TransformersConfig(model=model, device=device))
    raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(defaults.BACKENDS)}")


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
