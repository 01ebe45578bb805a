"""The model's lifecycle in the server: loaded lazily, once, off the event loop, with a status.

Loading a model takes seconds to minutes and may fail (no network for the
default hub model, a wrong folder, no CUDA, an endpoint that does not
answer). The event loop must keep answering meanwhile, and a failure must be
said once, clearly, while every feature that needs no model keeps working.
So the backend is opened by the engine
(:func:`model_runtime.run.engine.open_backend`) in its own single worker
thread; callers get a future; the state goes to the client as
``editseq/status`` notifications (``loading``, ``ready``, ``busy``,
``error``). The backend is kept per :attr:`~model_runtime.run.config.RunConfig.backend_key`,
so a settings change that keeps the model (more rounds, another timeout)
reuses it, and one that names another model starts a new load.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from model_runtime import defaults
from model_runtime.errors import EditseqError
from model_runtime.run.config import RunConfig

from .protocol import for_user

__all__ = ["ENDPOINT_OPTION", "ModelHost", "ModelUnavailable"]

#: How an unreachable endpoint's message names the knob that fixes it.
ENDPOINT_OPTION = "the `endpoint` setting"


class ModelUnavailable(EditseqError):
    """The configured model could not be loaded; the message says how to fix it."""


def _explain(config: RunConfig, exc: BaseException) -> str:
    # An unreachable endpoint's message names the endpoint and the setting; other failures name the model.
    text = f"cannot load the model {config.model!r} ({config.backend}): {exc}"
    if config.backend == "transformers" and config.model == defaults.HUB_MODEL:
        text += (f". The model {defaults.HUB_MODEL} is fetched from the Hugging Face hub; offline, "
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

    def backend(self, config: RunConfig) -> Future:
        """The loaded backend for ``config`` (a future); the first call for a model starts its load."""
        with self._lock:
            if self._key != config.backend_key or self._future is None:
                self._key = config.backend_key
                self._future = self._executor.submit(self._load, config)
            return self._future

    def _load(self, config: RunConfig):
        from model_runtime.run import engine

        self._status("loading", f"loading {config.model}")
        try:
            backend = engine.open_backend(config, endpoint_option=ENDPOINT_OPTION)
        except Exception as exc:  # any failure to load is reported the same way, once
            error = ModelUnavailable(_explain(config, exc))
            self._status("error", for_user(error))
            raise error from None
        # torch and the model are millions of long-lived objects: out of the collector's sight, a full
        # collection no longer stalls every request (190 ms every ~50 edits of a 1 MB file before).
        gc.freeze()
        self._status("ready", config.model)
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
