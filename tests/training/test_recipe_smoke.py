"""The one-GPU recipe, run end to end on CPU with its ``smoke`` profile: every step wired together.

corpus -> tokenizer -> LintSeq data -> pretraining -> LintSeq SFT -> CYCLE
collection -> CYCLE training -> rank training -> HumanEval (one-shot and refine) -> export, each
step through ``scripts/recipe.sh`` exactly as a GPU run calls it, only with
tiny sizes. The numbers are meaningless; what is checked is that each step
consumes what the previous one wrote and leaves what the next one needs, that
losses fall where a few steps can make them fall, and that a second run of
the recipe finds everything finished and redoes nothing.

A model trained for a minute on a CPU rarely writes a program that applies,
so its own samples may give no repair row at all. The CYCLE data therefore
also gets a verified refine run (``editseq refine --trajectory``, the memorised
repair model of the refine tests fixing ``clamp``), as a user's editor repairs
would feed it: the training step always has repair rows to train on.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "scripts" / "recipe.sh"


def _losses(folder: Path) -> list[float]:
    rows = [json.loads(line) for line in (folder / "loss_log.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def _recipe(work: Path, *steps: str, trajectory: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROFILE": "smoke", "WORK": str(work), "QUIET": "1", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "EDITSEQ": f"{sys.executable} -m model_runtime.cli"}
    if trajectory is not None:
        env["TRAJECTORIES"] = str(trajectory)
    return subprocess.run(["bash", str(RECIPE), *steps], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)


def _refine_trajectory(root: Path) -> Path:
    """A verified refine run of the clamp scenario, written by `editseq refine --trajectory`."""
    from refine_models import TEST_ENV, repair_model, write_workspace

    write_workspace(root, "clamp")
    trajectory = root / "clamp-run.json"
    done = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "refine", "clamp.py::clamp", "--tests", "tests/test_clamp.py",
         "--model", str(repair_model()), "--device", "cpu", "--python", sys.executable,
         "--trajectory", str(trajectory)],
        cwd=root, env={**os.environ, **TEST_ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return trajectory


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("recipe") / "work"
    trajectory = _refine_trajectory(tmp_path_factory.mktemp("clamp"))
    started = time.perf_counter()
    done = _recipe(work, "all", trajectory=trajectory)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    print(f"recipe smoke: {time.perf_counter() - started:.0f} s")
    return work


def test_corpus_reports_counts_and_feeds_the_tokenizer(work):
    report = json.loads((work / "corpus" / "report.json").read_text())
    assert report  # counts at every step; the corpus tests check their meaning
    assert sum(1 for _ in (work / "corpus" / "programs.jsonl").open()) > 20
    assert sum(1 for _ in (work / "corpus" / "problems.jsonl").open()) >= 1
    assert (work / "tokenizer" / "tokenizer.json").is_file()


def test_pretraining_and_lintseq_sft_lower_their_losses(work):
    for stage in ("pretrain", "sft"):
        losses = _losses(work / stage)
        assert losses[-1] < losses[0], (stage, losses)
        assert (work / stage / ".final").is_file()
    paths = [json.loads(line) for line in (work / "lintseq.jsonl").read_text().splitlines()]
    assert paths and all(row["edit_path"] for row in paths)


def test_cycle_data_is_collected_and_trained_on(work):
    rows = [json.loads(line) for line in (work / "cycle.jsonl").read_text().splitlines() if line.strip()]
    from_refine = [row for row in rows if row["kind"] == "repair" and row["source"] == "refine"]
    assert len(from_refine) == 2  # clamp's two repair rounds
    log = (work / "logs" / "collect.log").read_text()
    problems, samples = map(int, re.search(r"(\d+) problems, (\d+) samples", log).groups())
    assert problems >= 1 and samples == 4 * problems  # the model's own samples were run too
    losses = _losses(work / "cycle")
    assert losses and all(math.isfinite(x) for x in losses)


def test_rank_training_runs_on_the_bugs_and_its_manifest_reaches_the_export(work):
    assert (work / "rank" / ".final").is_file()
    log = [json.loads(line) for line in (work / "rank" / "rank_log.jsonl").read_text().splitlines()]
    assert log and log[-1]["step"] == 4 and all(math.isfinite(e["loss"]) for e in log)
    manifest = json.loads((work / "export" / "manifest.json").read_text())
    assert manifest["repair"] == "rank" and set(manifest["formats"]) == {"lintseq", "cycle"}


def test_humaneval_both_arms_are_scored(work):
    one_shot = json.loads((work / "eval" / "summary.json").read_text())
    assert set(one_shot["pass_at_k"]) >= {"1"}
    assert all(0.0 <= value <= 1.0 for value in one_shot["pass_at_k"].values())
    results = (work / "eval" / "results.jsonl").read_text().splitlines()
    assert len(results) == 5
    assert (work / "eval-refine" / "summary.json").is_file()


def test_export_is_bf16_shards_within_limits(work):
    files = [p for p in (work / "export").iterdir() if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert all(p.stat().st_size < 16 * 2**20 for p in files) and sum(p.stat().st_size for p in files) < 64 * 2**20


def test_a_second_run_finds_everything_done(work):
    started = time.perf_counter()
    done = _recipe(work, "corpus", "tokenizer", "lintseq", "pretrain", "sft", "collect", "cycle", "rank", "status")
    assert done.returncode == 0, done.stderr
    assert "already finished" in done.stdout and done.stdout.count("finished") >= 4
    assert time.perf_counter() - started < 30
