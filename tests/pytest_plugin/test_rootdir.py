"""Plugin options that take a path never move pytest's rootdir (``--editseq-model /path``, with a space).

pytest works out the rootdir and the ini file before it loads installed
plugins, so a value after a space looked like a test path: the rootdir, and
the report with it, moved towards the model's folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAILING = "def test_x():\n    assert 1 == 2\n"


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest as a user runs it: from the project, no ``--rootdir``, the plugin loaded by ``-p``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EDITSEQ_"))}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    command = [sys.executable, "-m", "pytest", "-p", "model_runtime.pytest_plugin", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    project, model = tmp_path / "project", tmp_path / "models" / "m"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_x.py").write_text(FAILING)
    model.mkdir(parents=True)
    return project, model


@pytest.mark.parametrize("spelling", ["space", "equals"])
@pytest.mark.parametrize("paths", [[], ["tests"]])
def test_a_model_path_leaves_the_rootdir_and_the_report_where_they_were(layout, spelling, paths):
    project, model = layout
    option = ["--editseq-model", str(model)] if spelling == "space" else [f"--editseq-model={model}"]
    run = pytest_in(project, "--editseq", *option, *paths)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"rootdir: {project}" in run.stdout
    assert "tests/test_x.py::test_x" in run.stdout  # node ids relative to the project, not to its parent
    assert (project / ".editseq" / "pytest-report.json").is_file()
    assert not (project.parent / ".editseq").exists() and not (model / ".editseq").exists()


def test_when_the_path_picked_another_ini_file_the_run_stops_with_the_fix_to_type(layout):
    project, model = layout
    (model.parent / "pytest.ini").write_text("[pytest]\naddopts = -x\n")  # the model's folder has a config
    run = pytest_in(project, "--editseq", "--editseq-model", str(model))
    assert run.returncode == 4, run.stdout + run.stderr  # a usage error: no test ran, nothing written
    assert f"write --editseq-model={model}" in run.stderr
    assert not (project / ".editseq").exists() and not (model.parent / ".editseq").exists()
    fixed = pytest_in(project, "--editseq", f"--editseq-model={model}")
    assert fixed.returncode == 1 and (project / ".editseq" / "pytest-report.json").is_file()


def test_a_project_ini_pytest_missed_is_taken_when_nothing_in_it_was_due_earlier(layout):
    """Without test paths, the model's folder alone made pytest miss the project's pytest.ini."""
    project, model = layout
    (project / "pytest.ini").write_text("[pytest]\npython_functions = check_*\n")
    (project / "tests" / "test_x.py").write_text("def check_x():\n    assert 1 == 2\n")
    run = pytest_in(project, "--editseq", "--editseq-model", str(model))
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"rootdir: {project}" in run.stdout and "configfile: pytest.ini" in run.stdout
    assert "tests/test_x.py::check_x" in run.stdout  # collected by the ini's python_functions
    (project / "pytest.ini").write_text("[pytest]\naddopts = -x\n")  # read before plugins load
    run = pytest_in(project, "--editseq", "--editseq-model", str(model))
    assert run.returncode == 4 and f"write --editseq-model={model}" in run.stderr
