"""Fixtures the backend tests share."""

from __future__ import annotations

import pytest

from model_runtime.backends import TransformersBackend


@pytest.fixture(scope="module")
def local(tiny_lintseq_model):
    """The tiny LintSeq model in process, loaded: what the HTTP paths are compared with."""
    backend = TransformersBackend(str(tiny_lintseq_model.folder))
    backend.load()
    return backend
