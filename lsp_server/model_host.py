"""The model's lifecycle in the server: loaded lazily, once, off the event loop, with a status.

Loading a model takes seconds to minutes and may fail (no network for the
default hub model, a wrong folder, no CUDA). The event loop must keep
answering meanwhile, and a failure must be said once, clearly, while every
feature that needs no model keeps working. So the backend is built and loaded
in its own single worker thread; callers get a future; the state goes to the
client as ``editseq/status`` notifications (``loading``, ``ready``, ``busy``,
``error``). The engine keeps one instance per model per process
(:func:`~model_runtime.backends.transformers_backend.load_model`), so a run
after the load reuses it; a settings change that names another model starts
a new load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from .settings import DEFAULT_MODEL, Settings

__all__ = ["STATUS_METHOD", "ModelHost", "ModelUnavailable"]

STATUS_METHOD = "editseq/status"


class ModelUnavailable(Exception):
    """The configured model could not be loaded; the message says how to fix it."""


def _backend(settings: Settings):
    from model_runtime.backends import make_backend

    return make_backend(settings.backend, settings.model, endpoint=settings.endpoint, device=settings.device)


def _explain(settings: Settings, exc: BaseException) -> str:
    where = settings.endpoint if settings.backend == "openai" else settings.model
    text = f"editseq: cannot load the model {where!r} ({settings.backend}): {exc}"
    if settings.backend == "transformers" and settings.model == DEFAULT_MODEL:
        text += (f". The default model {DEFAULT_MODEL} is fetched from the Hugging Face hub; offline, "
                 "download it elsewhere and set `model` to its local folder (initializationOptions, the "
                 "`editseq` settings section, or `model = \"/path\"` under [tool.editseq] in pyproject.toml)")
    return text


class ModelHost:
    """Owns the backend for the current settings; ``status(state, message)`` reports changes."""

    def __init__(self, status: Callable[[str, str], None]) -> None:
        self._status = status
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="editseq-model")
        self._lock = threading.Lock()
        self._key: tuple[str, ...] | None = None
        self._future: Future | None = None
        self._busy = 0

    def backend(self, settings: Settings) -> Future:
        """The loaded backend for ``settings`` (a future); the first call for a model starts its load."""
        key = (settings.backend, settings.model, settings.endpoint, settings.device)
        with self._lock:
            if self._key != key or self._future is None:
                self._key = key
                self._future = self._executor.submit(self._load, settings)
            return self._future

    def _load(self, settings: Settings):
        self._status("loading", f"loading {settings.model}")
        try:
            backend = _backend(settings)
            backend.load()
        except Exception as exc:  # any failure to load is reported the same way, once
            message = _explain(settings, exc)
            self._status("error", message)
            raise ModelUnavailable(message) from None
        self._status("ready", settings.model)
        return backend

    def run_started(self) -> None:
        with self._lock:
            self._busy += 1
        self._status("busy", "")

    def run_finished(self) -> None:
        with self._lock:
            self._busy -= 1
            idle = self._busy == 0
            failed = self._future is not None and self._future.done() and self._future.exception() is not None
        if idle and not failed:
            self._status("ready", "")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
