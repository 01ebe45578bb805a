"""Open the backend, make the sandbox, run write or refine, write back only a verified, unchanged file.

Every front end calls these functions with a :class:`~.config.RunConfig`:

* ``editseq refine``: :func:`make_backend` (loaded lazily, after round 0 ran),
  :func:`refine`, then :func:`apply_result` with ``--apply``;
* ``pytest --editseq-refine``: :func:`open_backend` once, :func:`refine` per
  failing function, :func:`apply_result` with ``--editseq-apply``;
* the language server: :func:`open_backend` in its model thread,
  :func:`refine` or :func:`write` per run (its edits reach the file through
  the editor, never from here);
* batch jobs (``eval``, ``train cycle-collect``): :func:`opened_backend`.

Errors are :class:`~model_runtime.errors.EditseqError` subclasses with a
message for the user.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from model_runtime.backends import Backend, EndpointUnreachable
from model_runtime.backends import make_backend as _build_backend
from model_runtime.sandbox.runner import PYTEST_VARIABLES, Sandbox

from .config import RunConfig

__all__ = ["apply_result", "make_backend", "make_sandbox", "open_backend", "opened_backend", "refine",
           "sandbox_mode", "write", "write_if_unchanged"]


def make_backend(config: RunConfig) -> Backend:
    """The backend ``config`` names, not loaded yet (it loads on first use)."""
    return _build_backend(config.backend, config.model, endpoint=config.endpoint, device=config.device)


def open_backend(config: RunConfig, *, endpoint_option: str = "--endpoint") -> Backend:
    """The backend, loaded (weights read, or the endpoint checked to answer and serve the model).

    ``endpoint_option`` is how this front end spells the endpoint setting, so an
    unreachable server is reported with the knob that fixes it.
    """
    backend = make_backend(config)
    try:
        backend.load()
    except EndpointUnreachable as exc:
        _close(backend)
        raise EndpointUnreachable(f"cannot reach the OpenAI-compatible endpoint {config.endpoint} "
                                  f"({endpoint_option}): {exc}") from None
    except BaseException:
        _close(backend)
        raise
    return backend


@contextlib.contextmanager
def opened_backend(config: RunConfig, *, endpoint_option: str = "--endpoint") -> Iterator[Backend]:
    """:func:`open_backend` for a batch job, closed at the end."""
    backend = open_backend(config, endpoint_option=endpoint_option)
    try:
        yield backend
    finally:
        _close(backend)


def _close(backend: Backend) -> None:
    close = getattr(backend, "close", None)
    if close is not None:
        close()


def make_sandbox(config: RunConfig, root: str | os.PathLike[str]) -> Sandbox:
    """The sandbox for ``root``: ``config``'s interpreter and limits, the user's pytest variables passed in."""
    env = {name: os.environ[name] for name in PYTEST_VARIABLES if name in os.environ}
    return Sandbox(Path(root), python=config.python, limits=config.limits, env={**env, **config.sandbox_env},
                   pytest_args=config.pytest_args)


def sandbox_mode() -> str:
    """What isolates the tests here (``bubblewrap``, ``namespaces``, ``limits only``), for front ends to say."""
    from model_runtime.sandbox.runner import isolation_mode

    return isolation_mode()


def refine(config: RunConfig, backend: Backend, root: str | os.PathLike[str], path: str, function: str,
           tests: Iterable[str], *, source: str | None = None, on_event: Callable | None = None,
           cancel: threading.Event | None = None):
    """Repair ``path::function`` until ``tests`` pass in the sandbox, within ``config``'s budget, without
    breaking the tests that passed (``config.verify``: those in the same files, the suite, or none).

    ``source`` is the file's text when an editor holds unsaved changes.
    Returns the loop's :class:`~model_runtime.refine.events.RefineResult`.
    """
    from model_runtime.refine.loop import RefineTarget
    from model_runtime.refine.loop import refine as refine_loop

    with make_sandbox(config, root) as sandbox:  # one warm runner for the loop's runs, stopped at its end
        return refine_loop(RefineTarget(Path(root), path, function), tests, backend,
                           sandbox=sandbox, budget=config.budget, on_event=on_event,
                           cancel=cancel, source=source, verify=config.verify)


def write(config: RunConfig, backend: Backend, root: str | os.PathLike[str], path: str, function: str, *,
          source: str | None = None, on_event: Callable | None = None, cancel: threading.Event | None = None):
    """Write the empty ``path::function`` edit by edit (nothing is tested: no test can check it yet)."""
    from model_runtime.refine.loop import RefineTarget
    from model_runtime.refine.write import write_function

    return write_function(RefineTarget(Path(root), path, function), backend, source=source, budget=config.budget,
                          on_event=on_event, cancel=cancel, prompt_format=config.prompt_format)


def apply_result(root: str | os.PathLike[str], result) -> tuple[bool, str]:
    """Write a refine result to its file: ``(written, why not)``.

    Only a verified result that changes something is written, and only while
    the file still holds the text the run started from.
    """
    if not result.verified:
        return False, "not verified green"
    if result.final == result.original:
        return False, "nothing to change"
    try:
        if not write_if_unchanged(Path(root) / result.path, result.original, result.final):
            return False, "the file changed on disk during the run"
    except OSError as exc:
        return False, f"cannot write {result.path}: {exc.strerror or exc}"
    return True, ""


def write_if_unchanged(path: Path, expected: str, text: str) -> bool:
    """Replace ``path`` with ``text`` atomically if it still holds ``expected``; False if not.

    A symlink is written through: its target gets the text and the link stays.
    The temporary file is made in the target's folder (so the rename is atomic)
    and gets the original's permissions, so the rename keeps them. A read-only
    file (no write bit for anyone: the user's "do not touch") is refused with
    :class:`PermissionError`, even for root; a read-only filesystem raises its
    own ``OSError``. Nothing is written in either case.
    """
    path = Path(os.path.realpath(path))
    try:
        if path.read_bytes() != expected.encode("utf-8"):
            return False
        mode = path.stat().st_mode & 0o7777
    except OSError:
        return False
    if not mode & 0o222:
        raise PermissionError(13, "the file is read-only (no write permission); not changed", str(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".editseq", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return True

