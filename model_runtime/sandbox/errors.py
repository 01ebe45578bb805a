"""The sandbox's one error: :class:`SandboxError`, raised when a run cannot start.

It has its own module because every part of the sandbox raises it: the shadow
copy (:mod:`.shadow`: a path outside the workspace, a copy over the size cap),
the interpreter lookup (:mod:`.process`) and the
:class:`~model_runtime.sandbox.runner.Sandbox` itself (:mod:`.runner`, which
re-exports it). Each imports it from here without importing the others.
"""

from __future__ import annotations

from model_runtime.errors import EditseqError

__all__ = ["SandboxError"]


class SandboxError(EditseqError, ValueError):
    """The run cannot start: bad workspace, candidate path or test id, copy too large, no interpreter."""
