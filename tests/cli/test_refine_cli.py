"""``editseq refine`` end to end: real models, real sandbox runs, real files; exit codes and output.

Run in-process through :func:`model_runtime.cli.main` from the workspace root
(so the model loads once per test process), except one run through the
installed ``python -m model_runtime.cli`` to check the process exit status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from model_runtime.cli import main
from model_runtime.edits.diff_apply import apply_diff
from model_runtime.run.engine import write_if_unchanged
from refine_models import CLAMP, CLAMP_FIXED, TEST_ENV, checksum, random_model, repair_model, write_workspace


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """Run from the workspace root, with the tests' pytest settings in the environment."""
    monkeypatch.chdir(tmp_path)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def _refine(target: str, tests: list[str], model, *options: str) -> int:
    return main(["refine", target, "--tests", *tests, "--model", str(model), "--device", "cpu",
                 "--python", sys.executable, *options])


def test_json_apply_streams_events_and_writes_the_verified_fix(workspace, capsys):
    write_workspace(workspace, "clamp")
    code = _refine("clamp.py::clamp", ["tests/test_clamp.py"], repair_model(), "--json", "--apply")
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines()]

    assert code == 0
    assert [e["event"] for e in events] == [
        "round_started", "candidate", "round_finished",
        "round_started", "edit", "candidate", "round_finished",
        "round_started", "edit", "candidate", "round_finished", "done",
    ]
    candidate = events[5]
    assert {"round": 1, "candidate": 0, "status": "tested", "passed": 2, "total": 3}.items() <= candidate.items()
    done = events[-1]
    assert {"verified": True, "rounds": 2, "reason": "green", "passed": 3, "total": 3, "applied": True,
            "file": "clamp.py", "function": "clamp", "steps": 2}.items() <= done.items()
    assert done["diff"].startswith("--- a/clamp.py\n+++ b/clamp.py")
    assert (workspace / "clamp.py").read_text() == CLAMP_FIXED
    assert not [p.name for p in workspace.iterdir() if p.name.startswith(".clamp.py.")]  # no temp file left


def test_an_unverified_result_is_not_applied_and_the_workspace_stays_byte_identical(workspace, capsys):
    write_workspace(workspace, "triple")
    before = checksum(workspace)
    code = _refine("triple.py::triple", ["tests/test_triple.py::test_triple"], repair_model(), "--apply")
    captured = capsys.readouterr()

    assert code == 1
    assert checksum(workspace) == before
    progress = captured.err
    assert "round 0: running the tests" in progress and "round 2 done" in progress
    assert "candidate 0: duplicate 0/1 passed" in progress
    assert "NOT verified (stopped: no_improvement)" in progress and "not applied: not verified green" in progress
    assert captured.out == ""  # no better program, so no diff


def test_readable_mode_prints_the_diff_on_stdout_and_leaves_the_file_without_apply(workspace, capsys):
    write_workspace(workspace, "clamp")
    code = _refine("clamp.py::clamp", ["tests/test_clamp.py"], repair_model())
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("--- a/clamp.py\n+++ b/clamp.py\n@@")
    assert apply_diff(CLAMP, captured.out).new == CLAMP_FIXED
    assert "verified green after 2 repair round(s), 3/3 tests passed" in captured.err
    assert (workspace / "clamp.py").read_text() == CLAMP


@pytest.mark.parametrize(
    ("target", "tests", "message"),
    [
        ("missing.py::clamp", ["tests/test_clamp.py"], "no such file in the workspace: missing.py"),
        ("clamp.py::clip", ["tests/test_clamp.py"], "no function `clip`"),
        ("clamp.py", ["tests/test_clamp.py"], "FILE::FUNCTION"),
        ("clamp.py::clamp", ["tests/test_clamp.py::test_gone"], "test not found"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(workspace, capsys, target, tests, message):
    write_workspace(workspace, "clamp")
    before = checksum(workspace)
    assert _refine(target, tests, random_model(), "--apply") == 2
    assert message in capsys.readouterr().err
    assert checksum(workspace) == before


def test_exit_status_of_the_real_process(workspace):
    write_workspace(workspace, "clamp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "refine", "clamp.py::nothing", "--tests",
         "tests/test_clamp.py", "--model", "unused"], capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 2 and "no function `nothing`" in done.stderr


def test_apply_refuses_a_file_that_changed_since_the_run_started(tmp_path):
    path = tmp_path / "clamp.py"
    path.write_text(CLAMP + "# typed meanwhile\n")
    assert not write_if_unchanged(path, CLAMP, CLAMP_FIXED)
    assert path.read_text() == CLAMP + "# typed meanwhile\n"
    path.write_text(CLAMP)
    path.chmod(0o640)
    assert write_if_unchanged(path, CLAMP, CLAMP_FIXED)
    assert path.read_text() == CLAMP_FIXED and path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["clamp.py"]


def test_trajectory_file_feeds_cycle_collection(workspace, capsys):
    """`--trajectory` writes the whole run; a verified run becomes CYCLE repair rows, one per round."""
    write_workspace(workspace, "clamp")
    trajectory = workspace / "runs" / "clamp.json"
    assert _refine("clamp.py::clamp", ["tests/test_clamp.py"], repair_model(), "--trajectory", str(trajectory)) == 0
    data = json.loads(trajectory.read_text())
    assert data["verified"] and data["final"] == CLAMP_FIXED and len(data["trajectory"]) == 3
    assert (workspace / "clamp.py").read_text() == CLAMP  # no --apply: the file is untouched
    capsys.readouterr()
    rows_file = workspace / "cycle.jsonl"
    assert main(["train", "cycle-collect", "--trajectories", str(trajectory), "--out", str(rows_file)]) == 0
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert len(rows) == 2 and {row["kind"] for row in rows} == {"repair"}
    assert all(row["feedback"] and row["good"].startswith("def clamp") for row in rows)


def test_apply_writes_through_a_symlink_to_the_real_file(tmp_path):
    real = tmp_path / "real_clamp.py"
    real.write_text(CLAMP)
    (tmp_path / "clamp.py").symlink_to(real.name)
    assert write_if_unchanged(tmp_path / "clamp.py", CLAMP, CLAMP_FIXED)
    assert (tmp_path / "clamp.py").is_symlink() and real.read_text() == CLAMP_FIXED


def test_a_read_only_file_is_refused_with_the_diff_printed_the_trajectory_written_and_exit_3(workspace, capsys):
    write_workspace(workspace, "clamp")
    (workspace / "clamp.py").chmod(0o444)
    code = _refine("clamp.py::clamp", ["tests/test_clamp.py"], repair_model(), "--apply",
                   "--trajectory", str(workspace / "run.json"))
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert (workspace / "clamp.py").read_text() == CLAMP and "read-only" in captured.err
    assert apply_diff(CLAMP, captured.out).new == CLAMP_FIXED  # the verified diff is still shown
    assert json.loads((workspace / "run.json").read_text())["verified"] is True


@pytest.mark.skipif(not shutil.which("bwrap"), reason="a read-only filesystem is made with bubblewrap")
def test_a_read_only_filesystem_is_a_clear_refusal(tmp_path):
    (tmp_path / "clamp.py").write_text(CLAMP)
    code = ("import sys; from types import SimpleNamespace as N; from model_runtime.run.engine import apply_result;"
            f"print(apply_result({str(tmp_path)!r}, N(verified=True, original={CLAMP!r}, final={CLAMP_FIXED!r},"
            " path='clamp.py')))")
    done = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--",
                           sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert "(False, 'cannot write clamp.py: Read-only file system')" in done.stdout
    assert (tmp_path / "clamp.py").read_text() == CLAMP
