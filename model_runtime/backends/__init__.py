"""Generation backends behind one interface (:class:`~.base.Backend`).

``transformers`` runs a model in this process; ``openai`` talks to any
OpenAI-compatible ``/v1/completions`` endpoint (vLLM for scale-out). The
backend classes are loaded on first access, so importing this package costs
neither torch nor httpx.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

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
    "OpenAIBackend",
    "OpenAIConfig",
    "StreamEvent",
    "TextEvent",
    "TransformersBackend",
    "TransformersConfig",
    "make_backend",
]


def make_backend(kind: str, model: str, *, endpoint: str = "http://127.0.0.1:8000/v1",
                 device: str = "auto") -> Backend:
    """The backend the CLI, the server and the pytest plugin build from their settings.

    ``kind`` is ``transformers`` (``model`` is a folder or hub id, run on
    ``device``) or ``openai`` (``model`` is the served name at ``endpoint``).
    One function, so every front end reads the same settings the same way.
    """
    if kind == "openai":
        from .openai_backend import OpenAIBackend, OpenAIConfig

        return OpenAIBackend(OpenAIConfig(base_url=endpoint, model=model))
    if kind == "transformers":
        from .transformers_backend import TransformersBackend, TransformersConfig

        return TransformersBackend(TransformersConfig(model=model, device=device))
    raise ValueError(f"unknown backend {kind!r}; choose 'transformers' or 'openai'")


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
