"""Argument types shared by the subcommands, so every command rejects bad numbers the same way."""

from __future__ import annotations

import argparse
import contextlib


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1, with a message naming the value otherwise."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@contextlib.contextmanager
def loaded_backend(args: argparse.Namespace):
    """The backend ``--backend/--model/--endpoint/--device`` name, loaded, closed afterwards.

    Backend failures come out as ``ValueError`` with the message a user can
    act on (an unreachable endpoint names the flag), so every batch command
    reports them the same way. Loading first means an OpenAI endpoint is
    checked (it answers and serves ``--model``) before any work starts.
    """
    from model_runtime.backends import BackendError, EndpointUnreachable, make_backend

    backend = make_backend(args.backend, args.model, endpoint=args.endpoint, device=args.device)
    try:
        backend.load()
        yield backend
    except EndpointUnreachable as exc:
        raise ValueError(f"cannot reach the OpenAI-compatible endpoint {args.endpoint} (--endpoint): {exc}") from None
    except BackendError as exc:
        raise ValueError(f"model error: {exc}") from None
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
