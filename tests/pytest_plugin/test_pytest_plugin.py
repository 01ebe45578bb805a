"""The pytest plugin, end to end: real pytest runs in temporary workspaces, real tiny models, nothing mocked.

Each run is a subprocess ``python -m pytest -p model_runtime.pytest_plugin``
with plugin autoloading off, so the tests do not depend on the entry point
being installed (and third-party plugins load only where a test names them),
and with an explicit ``--rootdir``: pytest may otherwise pick a folder above
the workspace (``/tmp`` here), where the report would land.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from model_runtime.edits.diff_apply import apply_diff
from model_runtime.sandbox.failure_report import read_report, report_path
from refine_models import CLAMP, CLAMP_FIXED, chat_model, repair_model, write_workspace

PLUGIN = ["-p", "model_runtime.pytest_plugin"]


def run_pytest(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EDITSEQ_"))}
    clean.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **(env or {}))
    command = [sys.executable, "-m", "pytest", *PLUGIN, "-p", "no:cacheprovider", f"--rootdir={root}", *args]
    return subprocess.run(command,
                          cwd=root, env=clean, capture_output=True, text=True, timeout=300)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


def sources(root: Path) -> dict[str, bytes]:
    """The workspace's files, byte for byte, without the report and bytecode (both rewritten by every run)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not {".editseq", "__pycache__"} & set(p.parts)}


def line_of(root: Path, rel: str, snippet: str) -> int:
    lines = (root / rel).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if snippet in line)


CALC = {
    "pytest.ini": "[pytest]\n",
    "pkg/__init__.py": "",
    "pkg/calc.py": '''\
        import functools


        def _helper(x):
            return 1 / x


        def compute(x):
            return _helper(x) + 1


        def logged(function):
            @functools.wraps(function)
            def wrapper(*args):
                return function(*args)
            return wrapper


        @logged
        def square(x):
            return x * 3


        class Calc:
            def add(self, a, b):
                return a - b

            @staticmethod
            def twice(x):
                return x * 3
        ''',
    "tests/conftest.py": '''\
        import pytest

        from pkg.calc import compute


        @pytest.fixture
        def broken():
            return compute(0)
        ''',
    "tests/test_calc.py": '''\
        import json

        from pkg import calc
        from pkg.calc import Calc, compute, square


        def check(value):
            assert compute(value) == 3


        def test_helper_raises():
            assert compute(0) == 1


        def test_method():
            assert Calc().add(1, 2) == 3


        def test_static_method_on_an_instance():
            c = Calc()
            assert c.twice(2) == 4


        def test_module_attribute_and_decorated():
            assert calc.square(2) == 4


        def test_through_a_test_helper():
            check(1)


        def test_library_only():
            assert json.loads("[1]") == [2]


        def test_fixture_error(broken):
            pass


        def test_passes():
            assert compute(1) == 2
        ''',
}


def test_the_report_names_the_function_under_test_through_helpers_and_methods(tmp_path):
    root = write(tmp_path, CALC)
    run = run_pytest(root, "--editseq")
    assert run.returncode == 1, run.stdout + run.stderr
    report = read_report(root)
    assert report is not None and report.root == str(root.resolve())
    failures = {f.node_id.split("::")[1]: f for f in report.failures}
    assert set(failures) == {"test_helper_raises", "test_method", "test_static_method_on_an_instance",
                             "test_module_attribute_and_decorated", "test_through_a_test_helper",
                             "test_library_only", "test_fixture_error"}
    assert report.passed == ("tests/test_calc.py::test_passes",)

    def target(name):
        f = failures[name]
        return f.target_path, f.target_function, f.target_line

    src, test = "pkg/calc.py", "tests/test_calc.py"
    # An exception: the function the test (or fixture) called, at its line that was running; a deeper
    # helper only when the test's name names it (test_helper_raises: _helper).
    assert target("test_helper_raises") == (src, "_helper", line_of(root, src, "return 1 / x"))
    assert target("test_fixture_error") == (src, "compute", line_of(root, src, "return _helper(x) + 1"))
    assert failures["test_fixture_error"].phase == "setup"
    # A bare assert: the call in the failing statement, at its def line.
    assert target("test_method") == (src, "Calc.add", line_of(root, src, "def add"))
    assert target("test_static_method_on_an_instance") == (src, "Calc.twice", line_of(root, src, "def twice"))
    assert target("test_module_attribute_and_decorated") == (src, "square", line_of(root, src, "def square"))
    assert target("test_through_a_test_helper") == (src, "compute", line_of(root, src, "def compute"))
    assert target("test_library_only") == (None, None, None)  # json is not the user's code

    method = failures["test_method"]
    assert (method.expected, method.actual) == ("3", "-1")
    assert method.test_path == test and method.test_line == line_of(root, test, "def test_method")
    assert method.message.startswith("assert -1 == 3")
    assert method.feedback == ('Test Case Failed: assert Calc().add(1, 2) == 3, Input: "1, 2", '
                               'Expected output: "3", Actual output: "-1"')
    helper = failures["test_helper_raises"]
    assert helper.expected is None and helper.actual is None
    assert helper.feedback == "Failed at line: return 1 / x; Error: ZeroDivisionError: division by zero"
    assert report.failures_for(src, "Calc.add") == [method]


def test_off_by_default_on_by_ini_and_off_inside_the_sandbox(tmp_path):
    root = write(tmp_path, {"tests/test_a.py": "def test_a():\n    assert 1 == 2\n"})
    assert run_pytest(root).returncode == 1
    assert not (root / ".editseq").exists()
    assert run_pytest(root, "--editseq", env={"EDITSEQ_SANDBOX": "1"}).returncode == 1
    assert not (root / ".editseq").exists()

    write(root, {"pytest.ini": "[pytest]\neditseq = true\n"})
    assert run_pytest(root).returncode == 1
    assert [f.node_id for f in read_report(root).failures] == ["tests/test_a.py::test_a"]


def test_the_report_is_updated_as_tests_pass_and_keeps_what_a_subset_run_left_alone(tmp_path):
    root = write(tmp_path, {
        "pytest.ini": "[pytest]\n",
        "a.py": "def inc(x):\n    return x\n",
        "b.py": "def dec(x):\n    return x\n",
        "tests/test_a.py": "from a import inc\n\n\ndef test_inc():\n    assert inc(1) == 2\n",
        "tests/test_b.py": "from b import dec\n\n\ndef test_dec():\n    assert dec(1) == 0\n",
    })
    run_pytest(root, "--editseq")
    assert {f.target_function for f in read_report(root).failures} == {"inc", "dec"}

    write(root, {"a.py": "def inc(x):\n    return x + 1\n"})
    run = run_pytest(root, "--editseq", "tests/test_a.py")
    assert run.returncode == 0, run.stdout
    report = read_report(root)
    assert [f.node_id for f in report.failures] == ["tests/test_b.py::test_dec"]  # not run: kept
    assert report.passed == ("tests/test_a.py::test_inc",)

    write(root, {"b.py": "def dec(x):\n    return x - 1\n"})
    run_pytest(root, "--editseq")
    report = read_report(root)
    assert report.failures == () and set(report.passed) == {"tests/test_a.py::test_inc", "tests/test_b.py::test_dec"}

    (root / "tests" / "test_b.py").unlink()
    run_pytest(root, "--editseq", "tests/test_a.py")
    assert read_report(root).passed == ("tests/test_a.py::test_inc",)  # a deleted test is forgotten


def test_a_collection_error_is_reported_then_cleared(tmp_path):
    root = write(tmp_path, {"pytest.ini": "[pytest]\n", "tests/test_x.py": "import no_such_module\n\n\ndef test_x():\n    pass\n"})
    assert run_pytest(root, "--editseq").returncode == 2
    (failure,) = read_report(root).failures
    assert failure.node_id == failure.test_path == "tests/test_x.py" and failure.phase == "collect"
    assert "no_such_module" in failure.message and failure.target_path is None

    write(root, {"tests/test_x.py": "def test_x():\n    pass\n"})
    assert run_pytest(root, "--editseq").returncode == 0
    report = read_report(root)
    assert report.failures == () and report.passed == ("tests/test_x.py::test_x",)


WORKER_PROBE = '''\
import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # after our plugin's own sessionfinish in this worker
        seen = (session.config.rootpath / ".editseq" / "pytest-report.json").exists()
        (session.config.rootpath / f"{worker}.seen").write_text(str(seen))
'''


def test_xdist_writes_one_report_from_the_controller_with_the_workers_details(tmp_path):
    tests = "".join(f"def test_{i}():\n    assert value({i}) == {i}\n\n\n" for i in range(12))
    root = write(tmp_path, {
        "pytest.ini": "[pytest]\n",
        "m.py": "def value(i):\n    return i + (i % 3 == 0)\n",
        "tests/conftest.py": WORKER_PROBE,
        "tests/test_m.py": "from m import value\n\n\n" + tests,
    })
    run = run_pytest(root, "-p", "xdist", "-n", "2", "--editseq")
    assert run.returncode == 1 and "8 passed" in run.stdout, run.stdout + run.stderr
    assert sorted(p.read_text() for p in root.glob("gw*.seen")) == ["False", "False"]  # both workers ran, wrote none
    report = read_report(root)
    failing = sorted(int(f.node_id.rsplit("_", 1)[1]) for f in report.failures)
    assert failing == [0, 3, 6, 9] and len(report.passed) == 8
    assert {(f.target_path, f.target_function, f.target_line) for f in report.failures} == {("m.py", "value", 1)}
    three = next(f for f in report.failures if f.node_id.endswith("::test_3"))
    assert (three.expected, three.actual) == ("3", "4")
    assert [p.name for p in (root / ".editseq").iterdir() if p.name.endswith(".tmp")] == []


def test_pytest_timeout_coexists_and_its_timeout_points_at_the_looping_function(tmp_path):
    root = write(tmp_path, {
        "pytest.ini": "[pytest]\n",
        "slow.py": "import time\n\n\ndef wait_forever():\n    while True:\n        time.sleep(0.01)\n",
        "tests/test_slow.py": "from slow import wait_forever\n\n\ndef test_hangs():\n    wait_forever()\n\n\n"
                              "def test_fine():\n    assert True\n",
    })
    run = run_pytest(root, "-p", "pytest_timeout", "--timeout=1", "--timeout-method=signal", "--editseq")
    assert run.returncode == 1 and "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    (failure,) = read_report(root).failures
    assert (failure.target_path, failure.target_function) == ("slow.py", "wait_forever")
    assert failure.message.startswith("Failed: Timeout")
    assert failure.feedback.startswith("Failed at line: time.sleep(0.01); Error: Failed: Timeout")


def test_bad_refine_options_fail_before_any_test_runs(tmp_path):
    root = write(tmp_path, {"tests/test_a.py": "def test_a():\n    assert 1 == 2\n"})
    run = run_pytest(root, "--editseq-apply")
    assert run.returncode == 4 and "--editseq-apply needs --editseq-refine" in run.stderr
    run = run_pytest(root, "--editseq-refine", "--editseq-backend", "ollama")
    assert run.returncode == 4 and "--editseq-backend" in run.stderr
    run = run_pytest(root, "--editseq-refine", "--editseq-model", "m", "--editseq-candidates", "0")
    assert run.returncode == 4 and "candidates" in run.stderr
    assert not (root / ".editseq").exists()


# --------------------------------------------------------------------------- refinement with real models

STATS = {
    "pytest.ini": "[pytest]\n",
    "stats.py": 'def mean(values):\n    """The average of values."""\n    return sum(values) / (len(values) + 1)\n',
    "tests/test_stats.py": "from stats import mean\n\n\ndef test_mean():\n    assert mean([1, 2, 3]) == 2\n",
}


def test_a_weak_model_stops_on_budget_and_nothing_is_applied(tmp_path, tiny_lintseq_model):
    root = write(tmp_path, STATS)
    run_pytest(root, "--editseq")  # the report of a plain run, to compare with
    before = sources(root)
    run = run_pytest(root, "--editseq-refine", "--editseq-apply", "--editseq-model", str(tiny_lintseq_model.folder),
                     "--editseq-rounds", "1", "--editseq-max-new-tokens", "48")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "editseq refine" in out and "stats.py::mean: refining for 1 failing test(s)" in out
    assert "0/1 function(s) verified green, 0 applied" in out and "round 1: best 0/1 passed" in out
    row = next(line for line in out.splitlines() if line.startswith("stats.py::mean "))
    assert row.split() == ["stats.py::mean", "1", "not", "verified", "(rounds)", "1", "0/1", "no"]
    assert sources(root) == before and "stats.py" in before
    assert [f.target_function for f in read_report(root).failures] == ["mean"]


def test_a_model_that_knows_the_fix_goes_green_and_applies_only_when_asked(tmp_path):
    root, path, function, _ = write_workspace(tmp_path, "clamp")
    write(root, {"other.py": "def other():\n    return 1\n",
                 "tests/test_other.py": "from other import other\n\n\ndef test_other():\n    assert other() == 2\n"})
    assert run_pytest(root, "--editseq").returncode == 1  # the report now also holds other.py's failure
    model = ["--editseq-model", str(repair_model())]
    run = run_pytest(root, "--editseq-refine", *model, "tests/test_clamp.py")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "clamp.py::clamp: refining for 2 failing test(s), keeping the tests of their files passing" in out
    assert "other.py" not in out  # only what failed in this run is refined
    lines = out.splitlines()
    diff = lines[lines.index("--- a/clamp.py"):next(i for i, l in enumerate(lines) if "editseq refine summary" in l)]
    step = apply_diff(CLAMP, "\n".join(diff))  # the printed diff is the fix
    assert step.applied and step.new == CLAMP_FIXED
    row = next(line for line in lines if line.startswith("clamp.py::clamp "))
    assert row.split() == ["clamp.py::clamp", "2", "verified", "2", "3/3", "no"]
    assert (root / path).read_text() == CLAMP  # printed, not written

    run = run_pytest(root, "--editseq-refine", "--editseq-apply", *model, "tests/test_clamp.py")
    assert "1/1 function(s) verified green, 1 applied" in run.stdout, run.stdout + run.stderr
    assert (root / path).read_text() == CLAMP_FIXED
    assert {f.target_function for f in read_report(root).failures} == {function, "other"}  # the run's own result

    assert run_pytest(root, "--editseq").returncode == 1
    assert [f.node_id for f in read_report(root).failures] == ["tests/test_other.py::test_other"]
    assert json.loads(report_path(root).read_text())["passed"] == [
        "tests/test_clamp.py::test_inside", "tests/test_clamp.py::test_below", "tests/test_clamp.py::test_above"]


def test_an_instruct_model_repairs_from_the_test_run_in_chat(tmp_path):
    """A chat model (a chat template, no manifest): the plugin's refine asks it in chat for one diff,
    with nothing configured but the model; its example call is dropped, the fix applied."""
    root, path, function, _ = write_workspace(tmp_path, "clamp")
    run = run_pytest(root, "--editseq-refine", "--editseq-apply", "--editseq-model", str(chat_model()),
                     "--editseq-rounds", "1", "tests/test_clamp.py")
    assert "1/1 function(s) verified green, 1 applied" in run.stdout, run.stdout + run.stderr
    fixed = (root / path).read_text()
    assert fixed == CLAMP_FIXED  # the docstring kept, the print(...) the model added dropped
    run = run_pytest(root, "--editseq-refine", "--editseq-model", str(chat_model()), "--editseq-format", "lintseq",
                     "--editseq-strategy", "rank", "tests/test_clamp.py")
    assert run.returncode == 0  # green now: nothing to refine, and the options were accepted



def test_two_runs_at_once_both_keep_their_failures(tmp_path):
    """The report's read-merge-write is locked: two runs finishing together lost one run's failures
    about 1 time in 10 before."""
    root = write(tmp_path, {"tests/test_a.py": "def test_a():\n    assert 1 == 2\n",
                            "tests/test_b.py": "def test_b():\n    assert 1 == 3\n"})
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EDITSEQ_"))}
    clean["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    for _ in range(6):
        report_path(root).unlink(missing_ok=True)
        runs = [subprocess.Popen([sys.executable, "-m", "pytest", *PLUGIN, "-p", "no:cacheprovider",
                                  f"--rootdir={root}", "--editseq", f"tests/test_{name}.py"],
                                 cwd=root, env=clean, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for name in "ab"]
        assert [run.wait(120) for run in runs] == [1, 1]
        assert sorted(f.node_id for f in read_report(root).failures) == [
            "tests/test_a.py::test_a", "tests/test_b.py::test_b"]


def test_the_users_pytest_options_reach_the_sandbox(tmp_path):
    """``-o python_functions=check_*`` collected the user's checks but not the sandbox's: the refine
    then saw no test at all."""
    from model_runtime.pytest_plugin.refine import sandbox_pytest_args

    assert sandbox_pytest_args(["-p", "no:asyncio", "tests", "-o", "python_functions=check_*", "-c", "x.ini",
                                "--editseq-model", "/m", "-Werror"]) == (
        "-p", "no:asyncio", "-o", "python_functions=check_*", "-Werror")
    root, path, _, _ = write_workspace(tmp_path, "clamp")
    checks = (root / "tests" / "test_clamp.py").read_text().replace("def test_", "def check_")
    (root / "tests" / "test_clamp.py").write_text(checks)
    run = run_pytest(root, "-o", "python_functions=check_*", "--editseq-refine", "--editseq-apply",
                     "--editseq-model", str(chat_model()), "--editseq-rounds", "1", "tests/test_clamp.py")
    assert "1/1 function(s) verified green, 1 applied" in run.stdout, run.stdout + run.stderr
    assert (root / path).read_text() == CLAMP_FIXED

    # The same checks collected through a configuration file named with -c (not the rootdir's):
    # the sandbox's pytest reads the same file, so it collects the same tests.
    (root / path).write_text(CLAMP)
    write(root, {"ci/pytest.ini": "[pytest]\npython_functions = check_*\n"})
    assert sandbox_pytest_args(["-c", "ci/pytest.ini"], root, root / "ci" / "pytest.ini") == ("-c", "ci/pytest.ini")
    run = run_pytest(root, "-c", "ci/pytest.ini", "--editseq-refine", "--editseq-apply",
                     "--editseq-model", str(chat_model()), "--editseq-rounds", "1", "tests/test_clamp.py")
    assert "1/1 function(s) verified green, 1 applied" in run.stdout, run.stdout + run.stderr
    assert (root / path).read_text() == CLAMP_FIXED
