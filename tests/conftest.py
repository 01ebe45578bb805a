"""Shared fixtures.

The trained tiny model is built once per test session (about a minute on two
CPU cores) into a temporary folder; every test that needs real model output
uses that folder. Nothing is downloaded: the hub is switched off before
transformers is imported.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# One torch thread (read when torch is first imported): the tiny models gain
# nothing from a second one, and on a CPU shared with other jobs OpenMP threads
# waiting for each other made generation and training up to 6-10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_lintseq_model(tmp_path_factory):
    """A tiny Llama trained on LintSeq edit paths: its :class:`~model_runtime.training.tiny_model.TrainReport`."""
    from model_runtime.training.tiny_model import train_lintseq_model

    return train_lintseq_model(tmp_path_factory.mktemp("tiny-lintseq-model"))
