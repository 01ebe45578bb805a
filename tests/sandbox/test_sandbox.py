"""The test sandbox: real pytest in real subprocesses, against a shadow copy, under limits.

Every hostile test below arrives as a *candidate file* (the ``files`` mapping),
the way a model's code arrives, and every test checksums the user's workspace
before and after: it must be byte-identical whatever the tests did. Limits are
small (2-3 s timeouts) so the whole file stays well under a minute.

Runs go through the warm runner (the default) unless a test says ``cold``; the
tests that stop a run (timeout, CPU, memory, a fork bomb, cancellation) run
through both, and check that a warm run really was warm.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from model_runtime.sandbox.runner import (
    Sandbox,
    SandboxError,
    SandboxLimits,
    ShadowPolicy,
    find_python,
    run_tests,
    shadow_copy,
)

CALC = """\
def add(a, b):
    return a - b


def div(a, b):
    return a / b
"""

TEST_CALC = """\
from calc import add, div


def test_add():
    assert add(2, 3) == 5


def test_div():
    assert div(6, 3) == 2
"""

FAST = SandboxLimits(timeout_s=20, cpu_s=20)
RUNNERS = ["cold", "warm"]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def checksum(root: Path) -> str:
    """Every path, mode, symlink target and byte under ``root`` (``.git`` included)."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(folder, name)
            info = path.lstat()
            digest.update(f"{path.relative_to(root)}\0{info.st_mode}\0".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    _write(root, {"calc.py": CALC, "tests/test_calc.py": TEST_CALC, ".git/HEAD": "ref: refs/heads/main\n",
                  "data/table.txt": "1 2 3\n"})
    return root


def _hostile(workspace: Path, body: str, limits: SandboxLimits, runner: str = "warm", **kwargs):
    """Run one hostile test file as a candidate; return the result and the workspace checksum check."""
    before = checksum(workspace)
    with Sandbox(workspace, limits=limits, warm=runner == "warm", **kwargs) as sandbox:
        result = sandbox.run(["tests/test_hostile.py"], {"tests/test_hostile.py": textwrap.dedent(body)})
        assert sandbox.warm_runs == (runner == "warm"), sandbox.cold_reason
    assert checksum(workspace) == before, "the user's workspace changed"
    return result


# --------------------------------------------------------------------------- positive


def test_failing_assert_gives_expected_actual_and_line(workspace):
    before = checksum(workspace)
    result = Sandbox(workspace, limits=FAST).run(["tests/test_calc.py"])
    assert checksum(workspace) == before
    assert result.status == "completed" and (result.passed, result.failed, result.errors) == (1, 1, 0)
    add = next(t for t in result.tests if t.node_id == "tests/test_calc.py::test_add")
    assert add.outcome == "failed" and add.phase == "call"
    assert (add.expected, add.actual) == ("5", "-1")
    assert (add.file, add.line, add.statement) == ("tests/test_calc.py", 5, "assert add(2, 3) == 5")
    assert "assert -1 == 5" in add.message and "test_add" in add.traceback
    assert str(workspace) not in add.traceback and "editseq-run-" not in add.traceback
    assert not result.green


def test_passing_candidate_is_all_green(workspace):
    fixed = CALC.replace("a - b", "a + b")
    result = Sandbox(workspace, limits=FAST).run(["tests/test_calc.py"], {"calc.py": fixed})
    assert result.green and result.passed == 2 and result.exit_code == 0
    assert (workspace / "calc.py").read_text() == CALC  # the candidate never reaches the user's tree
    assert {"shadow", "apply", "pytest", "results", "cleanup"} <= set(result.timings)


def test_exception_points_at_the_raising_line_in_the_code_under_test(workspace):
    result = run_tests(workspace, ["tests/test_calc.py::test_div"], {"calc.py": CALC.replace("a / b", "a / 0")},
                       limits=FAST)
    (div,) = result.tests
    assert div.outcome == "failed" and div.file == "calc.py" and div.line == 6
    assert div.statement == "return a / 0" and div.message == "ZeroDivisionError: division by zero"
    assert div.expected is None


def test_setup_error_skip_and_xfail_outcomes(workspace):
    body = """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        def test_setup(broken): pass

        def test_skip(): pytest.skip("later")

        @pytest.mark.xfail
        def test_xfail(): assert False

        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n): assert n == 1
    """
    result = _hostile(workspace, body, FAST)
    outcomes = {t.node_id.split("::")[1]: (t.outcome, t.phase) for t in result.tests}
    assert outcomes == {
        "test_setup": ("error", "setup"), "test_skip": ("skipped", "call"), "test_xfail": ("xfailed", "call"),
        "test_param[1]": ("passed", "call"), "test_param[2]": ("failed", "call"),
    }


# --------------------------------------------------------------------------- bad input and safety


@pytest.mark.parametrize("runner", RUNNERS)
def test_infinite_loop_is_killed_at_the_timeout(workspace, runner):
    # 4 s leaves room for pytest's own start-up on a loaded machine, so the
    # kill lands inside the test, not before it began.
    limits = SandboxLimits(timeout_s=4, cpu_s=20)
    started = time.monotonic()
    result = _hostile(workspace, "def test_spin():\n    while True:\n        pass\n", limits, runner)
    assert time.monotonic() - started < 9
    assert result.status == "timeout" and result.timed_out
    assert result.killed_reason == "timed out after 4 s (wall clock)"
    (spin,) = result.tests
    assert spin.outcome == "killed" and spin.phase == "call" and "timed out" in spin.message


@pytest.mark.parametrize("runner", RUNNERS)
def test_cpu_limit_stops_a_busy_loop(workspace, runner):
    result = _hostile(workspace, "def test_spin():\n    while True:\n        pass\n",
                      SandboxLimits(timeout_s=20, cpu_s=1), runner)
    assert result.status == "killed" and "CPU time limit" in result.reason
    assert result.tests[0].outcome == "killed"


@pytest.mark.parametrize("runner", RUNNERS)
def test_unbounded_allocation_hits_the_memory_limit(workspace, runner):
    body = """
        def test_hog():
            hoard = []
            while True:
                hoard.append(bytearray(50_000_000))
    """
    result = _hostile(workspace, body, SandboxLimits(timeout_s=20, cpu_s=20, memory_bytes=768 * 2**20), runner)
    (hog,) = result.tests
    assert result.status == "completed"
    assert hog.outcome == "failed" and hog.message.startswith("MemoryError")
    assert hog.statement == "hoard.append(bytearray(50_000_000))"


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


@pytest.mark.parametrize("runner", RUNNERS)
def test_fork_bomb_is_bounded_and_leaves_no_process_behind(workspace, runner):
    marker = f"editseq-forkbomb-{os.getpid()}-{time.monotonic_ns()}"
    # Bounded on purpose (400 forks), as a safety belt under RLIMIT_NPROC and the timeout.
    body = f"""
        import os, time

        def test_bomb():
            for _ in range(400):
                if os.fork() == 0:
                    os.execvp("sleep", [{marker!r}, "60"])
            time.sleep(60)
    """
    limits = SandboxLimits(timeout_s=3, cpu_s=10, processes=40)
    result = _hostile(workspace, body, limits, runner)
    (bomb,) = result.tests
    # Root is exempt from RLIMIT_NPROC; a pids cgroup binds it where one can be made (here: yes).
    cgroup = os.geteuid() == 0 and any(os.access(r, os.W_OK) for r in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"))
    if os.geteuid() == 0 and not cgroup:  # only the timeout ends it
        assert result.status == "timeout" and bomb.outcome == "killed"
    else:
        assert bomb.outcome == "failed" and "BlockingIOError" in bomb.message, (result.status, bomb.message)
    time.sleep(0.2)
    assert _processes_with(marker) == []


def test_test_that_wrecks_its_tree_leaves_the_workspace_identical(workspace, tmp_path, monkeypatch):
    body = """
        import os, shutil
        from pathlib import Path

        ROOT = Path(__file__).resolve().parents[1]

        def test_wreck():
            (ROOT / "calc.py").write_text("broken = True\\n")       # rewrite in place
            with open(ROOT / "data" / "table.txt", "r+") as f:      # same inode, new bytes
                f.write("XXXXX")
            os.chmod(ROOT / "tests", 0o500)                        # hinder the cleanup
            shutil.rmtree(ROOT / "data")
            (ROOT / ".git").mkdir(exist_ok=True)
            (ROOT / ".git" / "HEAD").write_text("hijacked")
            os.remove(ROOT / "calc.py")
            assert not (ROOT / "calc.py").exists()
    """
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(runs))
    result = _hostile(workspace, body, FAST)
    assert result.green  # it did all that, to the shadow copy only
    assert list(runs.iterdir()) == []  # and the run folder (the warm runner's too) is gone despite the chmod


def test_import_error_in_the_module_under_test_is_a_collection_error(workspace):
    candidate = {"calc.py": "import no_such_module_xyz\n\ndef add(a, b):\n    return a + b\n"}
    before = checksum(workspace)
    result = Sandbox(workspace, limits=FAST).run(["tests/test_calc.py::test_add"], candidate)
    assert checksum(workspace) == before
    (add,) = result.tests
    assert (add.outcome, add.phase) == ("error", "collect")
    assert add.message == "ModuleNotFoundError: No module named 'no_such_module_xyz'"


def test_syntax_error_in_an_untouched_module_is_a_collection_error(workspace):
    _write(workspace, {"helpers.py": "def broken(:\n    pass\n",
                       "tests/test_helpers.py": "import helpers\n\ndef test_h():\n    pass\n"})
    result = Sandbox(workspace, limits=FAST).run(["tests/test_helpers.py::test_h", "tests/test_calc.py::test_div"])
    outcomes = {t.node_id: (t.outcome, t.phase) for t in result.tests}
    assert outcomes == {"tests/test_helpers.py::test_h": ("error", "collect"),
                        "tests/test_calc.py::test_div": ("passed", "call")}  # the other module still runs
    broken = next(t for t in result.tests if t.outcome == "error")
    assert "SyntaxError" in broken.traceback


def test_candidate_that_does_not_parse_is_refused_before_any_test_runs(workspace, tmp_path):
    witness = tmp_path / "ran"
    test = f"from pathlib import Path\n\ndef test_w():\n    Path({str(witness)!r}).touch()\n"
    result = Sandbox(workspace, limits=FAST).run(
        ["tests/test_w.py"], {"tests/test_w.py": test, "calc.py": "def add(a, b:\n    return a\n"})
    assert result.status == "refused" and result.tests == ()
    assert result.reason == "calc.py does not parse: SyntaxError: '(' was never closed (line 1)"
    assert "pytest" not in result.timings and not witness.exists()


def test_missing_test_file_and_missing_test_id_are_clear_errors(workspace):
    result = Sandbox(workspace, limits=FAST).run(
        ["tests/test_nope.py::test_a", "tests/test_calc.py::test_missing", "tests/test_calc.py::test_div"])
    messages = {t.node_id: (t.outcome, t.message) for t in result.tests}
    assert messages == {
        "tests/test_nope.py::test_a": ("error", "test file not found: tests/test_nope.py"),
        "tests/test_calc.py::test_missing": ("error", "test not found: tests/test_calc.py::test_missing "
                                                      "(no test matches this id)"),
        "tests/test_calc.py::test_div": ("passed", ""),
    }


@pytest.mark.parametrize("ids, files", [
    ([], {}),
    (["../outside.py::test_x"], {}),
    (["/etc/passwd"], {}),
    (["tests/test_calc.py"], {"../escape.py": "x = 1\n"}),
])
def test_ids_and_paths_outside_the_workspace_are_refused(workspace, ids, files):
    with pytest.raises(SandboxError):
        Sandbox(workspace).run(ids, files)


def test_missing_workspace_and_interpreter_are_clear_errors(tmp_path, workspace):
    with pytest.raises(SandboxError, match="not a folder"):
        Sandbox(tmp_path / "nowhere")
    with pytest.raises(SandboxError, match="interpreter not found"):
        Sandbox(workspace, python="/no/such/python")


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("mode", ["auto", "namespaces"])
def test_cancellation_kills_the_run_within_a_second(workspace, mode, runner):
    cancel = threading.Event()
    marker = workspace.parent / "started"
    body = f"""
        import time
        from pathlib import Path

        def test_sleep():
            Path({str(marker)!r}).touch()
            time.sleep(60)
    """
    sandbox = Sandbox(workspace, limits=SandboxLimits(timeout_s=30, cpu_s=30), mode=mode, warm=runner == "warm")
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=sandbox.run(
        ["tests/test_hostile.py"], {"tests/test_hostile.py": textwrap.dedent(body)}, cancel=cancel)))
    thread.start()
    if sandbox.in_force == "bubblewrap":  # the marker lands in the run's private /tmp: give it time instead
        time.sleep(5)
    else:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the test never started"
    cancelled_at = time.monotonic()
    cancel.set()
    thread.join(5)
    elapsed = time.monotonic() - cancelled_at
    assert not thread.is_alive() and elapsed < 1.0, elapsed
    result = box["result"]
    assert result.status == "cancelled" and result.killed_reason == "cancelled"
    assert result.tests[0].outcome == "killed"
    assert sandbox.warm_runs == (runner == "warm"), sandbox.cold_reason
    sandbox.close()


def test_environment_is_scrubbed_and_network_is_off(workspace, monkeypatch):
    monkeypatch.setenv("EDITSEQ_SECRET_TOKEN", "hunter2")
    no_network = "network" in Sandbox(workspace).isolation
    sandbox = Sandbox(workspace, limits=FAST, env={"EXPECT_NO_NETWORK": str(int(no_network))})
    body = """
        import os, socket
        from pathlib import Path

        def test_env():
            assert "EDITSEQ_SECRET_TOKEN" not in os.environ
            assert set(os.environ) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
                                       "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
                                       "VIRTUAL_ENV", "EXPECT_NO_NETWORK", "PYTEST_CURRENT_TEST",
                                       "PYTEST_VERSION", "EDITSEQ_SANDBOX", "PWD"}
            assert os.environ["EDITSEQ_SANDBOX"] == "1"  # editseq's own pytest plugin stays off in here
            assert list(Path(os.environ["HOME"]).iterdir()) == []

        def test_network():
            if os.environ["EXPECT_NO_NETWORK"] == "1":
                assert [name for _, name in socket.if_nameindex()] == ["lo"]
            server = socket.create_server(("127.0.0.1", 0))  # loopback still works
            socket.create_connection(server.getsockname(), timeout=2).close()
    """
    result = sandbox.run(["tests/test_hostile.py"], {"tests/test_hostile.py": textwrap.dedent(body)})
    assert result.green, [(t.node_id, t.message) for t in result.tests]


def test_output_is_capped(workspace):
    body = "def test_loud():\n    print('x' * 3_000_000)\n"
    result = _hostile(workspace, body, SandboxLimits(timeout_s=20, cpu_s=20, output_bytes=10_000),
                      pytest_args=["-s"])
    assert result.green
    assert len(result.stdout) < 10_100 and "more bytes not kept" in result.stdout


def test_runs_with_the_workspace_virtualenv(workspace):
    (workspace / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, workspace / ".venv" / "bin" / "python")
    assert find_python(workspace) == str(workspace / ".venv" / "bin" / "python")
    body = "import sys\n\ndef test_which():\n    assert sys.executable.endswith('/.venv/bin/python')\n"
    result = _hostile(workspace, body, FAST)
    assert result.green


# --------------------------------------------------------------------------- shadow copy


def test_shadow_copy_skips_tool_folders_and_never_links(tmp_path, workspace):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    os.symlink(outside, workspace / "linked.txt")
    os.symlink(workspace / "data", workspace / "data_link")
    _write(workspace, {"node_modules/x.js": "", "pkg/__pycache__/m.pyc": "", "myenv/pyvenv.cfg": "",
                       "myenv/lib/site.py": ""})
    dest = tmp_path / "shadow"
    stats = shadow_copy(workspace, dest)
    os.symlink(workspace / "data" / "table.txt", workspace / "table_link.txt")
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    # A link out of the workspace is left out; one inside is copied as a regular file.
    assert copied == ["calc.py", "data/table.txt", "tests/test_calc.py"]
    assert stats.files == 3
    stats = shadow_copy(workspace, tmp_path / "shadow2")
    assert stats.files == 4 and not (tmp_path / "shadow2" / "table_link.txt").is_symlink()
    (tmp_path / "shadow2" / "table_link.txt").write_text("overwritten\n")
    (dest / "calc.py").write_text("overwritten\n")
    assert outside.read_text() == "precious\n" and (workspace / "calc.py").read_text() == CALC
    assert (workspace / "data" / "table.txt").read_text() == "1 2 3\n"


def test_shadow_copy_honours_the_size_cap(tmp_path, workspace):
    with pytest.raises(SandboxError, match="larger than the shadow copy limit"):
        shadow_copy(workspace, tmp_path / "shadow", ShadowPolicy(max_bytes=100))
