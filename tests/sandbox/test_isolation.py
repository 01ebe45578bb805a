"""Attacks on the sandbox, in both modes: bubblewrap where it runs, the ``unshare`` fallback otherwise;
and each through both runners: a fresh process per run (``cold``) and the warm runner's fork (``warm``).

Each test reproduces an attack that succeeded before bubblewrap (a host Unix
socket, the real workspace written by absolute path, a secret in the home
folder, files left in ``/tmp``, the disk filled, links to ``/proc``, ``/``
remounted read-write by a test running as root) and shows it held: in both
modes where the defence is the runner's own (the shadow copy, the disk limit),
and under bubblewrap where only a mount namespace can hold it (the fallback's
result is asserted too, so the README's "not prevented" list stays true). A
warm run must hold each exactly as a cold one does; the tests at the end are
the warm runner's own: nothing one run leaves behind (files in the private
mounts, processes, IPC objects, mounts, monkeypatched modules) reaches the
next run, the runner cannot be reached from a run, and a run that cannot be
taken exactly as a cold one would goes cold.
"""

from __future__ import annotations

import os
import socket
import textwrap
import uuid
from pathlib import Path

import pytest

from model_runtime.sandbox.runner import Sandbox, SandboxError, SandboxLimits, shadow_copy

LIMITS = SandboxLimits(timeout_s=20, cpu_s=20)
BWRAP = Sandbox(Path(__file__).parent, warm=False).in_force == "bubblewrap"
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap is not installed or cannot run here (.ci/run installs it)")
MODES = [pytest.param("bubblewrap", marks=needs_bwrap), "namespaces"]
RUNNERS = ["cold", "warm"]


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    return root


def _attack(workspace: Path, mode: str, runner: str, body: str, limits: SandboxLimits = LIMITS, **env):
    """One run of the attack in ``body``, through ``runner``; a warm one must really have gone warm."""
    with Sandbox(workspace, limits=limits, mode=mode, env={k: str(v) for k, v in env.items()},
                 warm=runner == "warm") as sandbox:
        assert sandbox.in_force == mode
        result = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": textwrap.dedent(body)})
        assert sandbox.warm_runs == (runner == "warm"), sandbox.cold_reason
    return result


def _run(workspace: Path, mode: str, runner: str, body: str, limits: SandboxLimits = LIMITS, **env):
    result = _attack(workspace, mode, runner, body, limits, **env)
    assert result.status == "completed", (result.status, result.reason, result.stderr[-500:])
    return result


def _outcomes(result) -> dict[str, str]:
    return {t.node_id.rpartition("::")[2]: t.outcome for t in result.tests}


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("mode", MODES)
def test_a_host_unix_socket_is_out_of_reach_under_bubblewrap(workspace, tmp_path, mode, runner):
    path = tmp_path / f"agent-{uuid.uuid4().hex[:8]}.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)
        result = _run(workspace, mode, runner, """
            import os, socket

            def test_reach_the_host():
                with socket.socket(socket.AF_UNIX) as client:
                    client.connect(os.environ["SOCKET"])
                    client.sendall(b"secrets")
        """, SOCKET=path)
    reached = _outcomes(result)["test_reach_the_host"] == "passed"
    assert reached is (mode == "namespaces")  # the fallback has no mount namespace: documented


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("mode", MODES)
def test_the_real_workspace_home_and_tmp_are_out_of_reach_under_bubblewrap(workspace, mode, runner):
    secret = Path.home() / f".editseq-test-secret-{uuid.uuid4().hex[:8]}"
    secret.write_text("id_rsa\n")
    leftover = Path("/tmp") / f"editseq-leftover-{uuid.uuid4().hex[:8]}"
    try:
        result = _run(workspace, mode, runner, """
            import os
            from pathlib import Path

            def test_write_the_real_workspace():
                Path(os.environ["WORKSPACE"], "calc.py").write_text("hacked")

            def test_read_a_secret_in_home():
                assert Path(os.environ["SECRET"]).read_text() == "id_rsa\\n"

            def test_leave_a_file_in_tmp():
                Path(os.environ["LEFTOVER"]).write_text("x")
        """, WORKSPACE=workspace, SECRET=secret, LEFTOVER=leftover)
        outcomes = _outcomes(result)
        held = mode == "bubblewrap"
        assert outcomes["test_write_the_real_workspace"] == ("failed" if held else "passed")  # read-only
        assert outcomes["test_read_a_secret_in_home"] == ("failed" if held else "passed")  # an empty home
        assert outcomes["test_leave_a_file_in_tmp"] == "passed"  # under bubblewrap, in a private /tmp
        assert ("hacked" in (workspace / "calc.py").read_text()) is not held
        assert leftover.exists() is not held
    finally:
        secret.unlink()
        leftover.unlink(missing_ok=True)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("mode", MODES)
def test_the_disk_limit_bounds_everything_a_run_writes(workspace, mode, runner):
    """12 files of 8 MiB under a 64 MiB per-file cap filled the disk before; now the run is stopped."""
    limits = SandboxLimits(timeout_s=30, cpu_s=30, disk_bytes=32 * 1024 * 1024, file_bytes=64 * 1024 * 1024)
    body = """
        import os, time

        def test_fill_the_disk():
            for i in range(12):
                with open(f"fill-{i}.bin", "wb") as out:
                    out.write(os.urandom(8 * 1024 * 1024))
            time.sleep(5)
    """
    result = _attack(workspace, mode, runner, body, limits)
    assert result.status == "killed" and "disk limit" in result.reason, (result.status, result.reason)


def test_the_shadow_copy_takes_regular_files_only(workspace, tmp_path):
    (workspace / "data").mkdir()
    (workspace / "data" / "inside.txt").write_text("inside\n")
    os.symlink(workspace / "data" / "inside.txt", workspace / "alias.txt")  # inside: copied as a file
    for name, target in (("environ", "/proc/self/environ"), ("pagemap", "/proc/self/pagemap"),
                         ("mem", "/proc/self/mem"), ("zero", "/dev/zero"), ("out", str(tmp_path))):
        os.symlink(target, workspace / name)
    os.mkfifo(workspace / "pipe")  # a reader would block forever
    stats = shadow_copy(workspace, tmp_path / "shadow")
    copied = sorted(str(p.relative_to(tmp_path / "shadow")) for p in (tmp_path / "shadow").rglob("*") if p.is_file())
    assert copied == ["alias.txt", "calc.py", "data/inside.txt"] and stats.files == 3
    assert not (tmp_path / "shadow" / "alias.txt").is_symlink()


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("mode", MODES)
def test_a_workspace_linking_to_proc_runs_normally(workspace, mode, runner):
    os.symlink("/proc/self/environ", workspace / "environ")
    os.symlink("/proc/self/mem", workspace / "mem")
    result = _run(workspace, mode, runner, """
        from pathlib import Path

        def test_no_environ_to_read():
            assert not Path("environ").exists() and not Path("mem").exists()
    """)
    assert result.green


def test_an_unknown_mode_is_refused(workspace):
    with pytest.raises(SandboxError, match="mode"):
        Sandbox(workspace, mode="docker")


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("mode", MODES)
def test_the_results_channel_is_in_no_argument_or_variable_and_not_inherited(workspace, mode, runner):
    """Before: the results file was in ``sys.argv``; a test appended "passed" records and exited 0."""
    result = _run(workspace, mode, runner, """
        import os, subprocess, sys

        def test_look_for_the_channel():
            assert not any("editseq-json" in arg or "jsonl" in arg for arg in sys.argv)
            assert not any("RESULTS" in name for name in os.environ)
            # A process the test starts inherits no pipe but its own standard streams.
            child = subprocess.run([sys.executable, "-c", "import os; print(len(os.listdir('/proc/self/fd')))"],
                                   capture_output=True, text=True, stdin=subprocess.DEVNULL)
            assert int(child.stdout) <= 4  # 0, 1, 2 and the listing's own descriptor
    """)
    assert result.green, [(t.node_id, t.message) for t in result.tests]


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("mode", MODES)
def test_forged_results_that_disagree_with_the_exit_status_are_not_trusted(workspace, mode, runner):
    body = """
        import json, os, stat

        def test_forge():
            forged = [{"event": "report", "nodeid": "tests/test_attack.py::test_forge", "when": "call",
                       "outcome": "passed", "xfail": False, "duration": 0.0},
                      {"event": "finished", "exitstatus": 0}]
            for name in os.listdir("/proc/self/fd"):  # every pipe this process holds, the channel among them
                try:
                    if stat.S_ISFIFO(os.fstat(int(name)).st_mode):
                        os.write(int(name), "".join(json.dumps(r) + "\\n" for r in forged).encode())
                except OSError:
                    pass
            os._exit(1)
    """
    result = _attack(workspace, mode, runner, body)
    assert not result.green and result.status == "crashed" and "not trusted" in result.reason, result.reason


@needs_bwrap
@pytest.mark.parametrize("runner", RUNNERS)
def test_a_test_running_as_root_cannot_remount_the_system_read_write(workspace, runner):
    """Before: bubblewrap run as root left the tests ``CAP_SYS_ADMIN`` in their namespaces, and
    ``mount -o remount,rw,bind /`` let a test write any file of the host, the user's tree among them."""
    result = _run(workspace, "bubblewrap", runner, """
        import ctypes, os
        from pathlib import Path

        MS_REMOUNT, MS_BIND = 32, 4096
        libc = ctypes.CDLL(None, use_errno=True)

        def remount(path):
            assert libc.mount(b"none", path.encode(), None, MS_REMOUNT | MS_BIND, None) == 0, \\
                os.strerror(ctypes.get_errno())

        def test_remount_root_read_write():
            remount("/")

        def test_remount_the_workspace_read_write():
            remount(os.environ["WORKSPACE"])

        def test_write_the_workspace():
            Path(os.environ["WORKSPACE"], "calc.py").write_text("hacked")

        def test_no_capability_left():
            assert "CapEff:\\t0000000000000000" in Path("/proc/self/status").read_text()
    """, WORKSPACE=workspace)
    assert _outcomes(result) == {"test_remount_root_read_write": "failed",
                                 "test_remount_the_workspace_read_write": "failed",
                                 "test_write_the_workspace": "failed", "test_no_capability_left": "passed"}
    assert "hacked" not in (workspace / "calc.py").read_text()


# --------------------------------------------------------------------------- the warm runner's own


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


_LEAVE = """
    import ctypes, os, sys, textwrap, time
    from pathlib import Path

    import pytest

    MARK, BWRAP = os.environ["MARK"], os.environ["BWRAP"] == "1"
    libc = ctypes.CDLL(None, use_errno=True)
    PLACES = [os.environ["HOME"], os.environ["TMPDIR"], str(Path.cwd().parent.parent)]  # .. runs/run/ws
    if BWRAP:  # the sandbox's private mounts
        PLACES += [p for p in ("/tmp", "/var/tmp", "/run", "/dev", "/dev/shm", "/root", "/home") if os.path.isdir(p)]
    SHM_KEY = 0x5EED


    def test_leave():
        for place in PLACES:
            Path(place, MARK).write_text("left behind")
        if BWRAP:
            os.chmod("/var/tmp", 0)
            assert libc.shmget(SHM_KEY, 4096, 0o1000 | 0o600) >= 0  # IPC_CREAT: a SysV segment
        else:  # a mount of its own: the run holds CAP_SYS_ADMIN in its user namespace
            libc.mount(b"tmpfs", b"/mnt", b"tmpfs", 0, None)
        if os.fork() == 0:  # a daemon in a session of its own
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", [MARK, "60"])
            os._exit(0)
        os.wait()
        textwrap.dedent = None  # modules the warm runner holds, monkeypatched
        pytest.approx = None
        os.environ["LEAKED"] = "1"
        sys.setrecursionlimit(12345)


    def test_nothing_left():
        assert [p for p in PLACES if Path(p, MARK).exists()] == []
        if BWRAP:
            assert os.access("/var/tmp", os.W_OK)
            assert libc.shmget(SHM_KEY, 0, 0) == -1
        assert "/mnt" not in [line.split()[4] for line in open("/proc/self/mountinfo")]
        assert textwrap.dedent is not None and pytest.approx is not None
        assert "LEAKED" not in os.environ and sys.getrecursionlimit() != 12345
"""


@pytest.mark.parametrize("mode", MODES)
def test_nothing_a_warm_run_leaves_reaches_the_next(workspace, mode):
    """Files in every writable place, a daemon, a SysV segment, a mount, monkeypatched modules and
    interpreter state: all gone for the next run of the same warm runner, as for a new cold run."""
    mark = f"editseq-leftover-{uuid.uuid4().hex[:8]}"
    env = {"MARK": mark, "BWRAP": str(int(mode == "bubblewrap"))}
    files = {"tests/test_attack.py": textwrap.dedent(_LEAVE)}
    # Putting the private mounts back touches their own files only, never what is bound into them
    # (the host's device nodes, the workspace).
    host = {path: os.stat(path) for path in ("/dev/null", "/dev/zero", "/dev/urandom", workspace)}
    with Sandbox(workspace, limits=LIMITS, mode=mode, env=env, warm=True) as sandbox:
        left = sandbox.run(["tests/test_attack.py::test_leave"], files)
        assert left.green, [(t.node_id, t.message) for t in left.tests]
        assert _processes_with(mark) == []  # the daemon died with the run
        checked = sandbox.run(["tests/test_attack.py::test_nothing_left"], files)
        assert checked.green, [(t.node_id, t.message) for t in checked.tests]
        assert sandbox.warm_runs == 2, sandbox.cold_reason
    assert {path: (info.st_mode, info.st_uid, info.st_gid) for path, info in host.items()} == {
        path: (info.st_mode, info.st_uid, info.st_gid) for path, info in
        ((path, os.stat(path)) for path in host)}


@needs_bwrap
def test_a_warm_run_sees_only_its_own_processes_and_cannot_stop_the_runner(workspace):
    body = """
        import os, signal

        def test_look_around():
            assert sorted(int(p) for p in os.listdir("/proc") if p.isdigit()) == [1, 2] and os.getpid() == 2
            os.kill(1, signal.SIGKILL)  # the run's PID 1, as bubblewrap's in a cold run: ignored
    """
    with Sandbox(workspace, limits=LIMITS, mode="bubblewrap", warm=True) as sandbox:
        first = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": textwrap.dedent(body)})
        second = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": textwrap.dedent(body)})
        assert first.green and second.green, [(t.node_id, t.message) for t in first.tests + second.tests]
        assert sandbox.warm_runs == 2, sandbox.cold_reason


@pytest.mark.parametrize("mode", MODES)
def test_a_killed_warm_run_leaves_the_runner_serving(workspace, mode):
    spin = "def test_spin():\n    while True:\n        pass\n"
    with Sandbox(workspace, limits=SandboxLimits(timeout_s=4, cpu_s=20), mode=mode, warm=True) as sandbox:
        stopped = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": spin})
        assert stopped.status == "timeout" and stopped.tests[0].outcome == "killed"
        fine = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": "def test_ok():\n    pass\n"})
        assert fine.green and sandbox.warm_runs == 2, (fine.status, fine.reason, sandbox.cold_reason)


_MIXED = """
    import pytest
    from calc import add

    def test_pass():
        assert add(1, 2) == 3

    def test_assert():
        assert add(2, 2) == 5

    def test_raise():
        {}["missing"]

    @pytest.fixture
    def broken():
        raise RuntimeError("fixture broke")

    def test_setup(broken):
        pass

    def test_skip():
        pytest.skip("later")

    @pytest.mark.xfail
    def test_xfail():
        assert False

    @pytest.mark.parametrize("n", [1, 2])
    def test_param(n):
        print("output", n)
        assert n == 1
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_warm_run_reports_what_a_cold_run_reports(workspace, mode):
    files = {"tests/test_attack.py": textwrap.dedent(_MIXED), "tests/test_broken.py": "import nowhere_xyz\n"}
    ids = ["tests/test_attack.py", "tests/test_broken.py"]
    seen = {}
    for runner in RUNNERS:
        with Sandbox(workspace, limits=LIMITS, mode=mode, warm=runner == "warm") as sandbox:
            result = sandbox.run(ids, files)
            assert sandbox.warm_runs == (runner == "warm"), sandbox.cold_reason
        seen[runner] = (result.status, result.exit_code, [(*(getattr(t, f) for f in (
            "node_id", "outcome", "phase", "message", "file", "line", "statement", "expected", "actual")),
            t.traceback.replace(str(workspace), "")) for t in result.tests])
    assert seen["warm"] == seen["cold"]
    assert len(seen["warm"][2]) == 9


def test_runs_the_warm_runner_cannot_take_as_a_cold_run_would_go_cold(workspace):
    test = {"tests/test_attack.py": "def test_ok():\n    pass\n"}
    with Sandbox(workspace, limits=LIMITS, warm=True) as sandbox:
        result = sandbox.run(["tests/test_attack.py"], {**test, "pytest.ini": "[pytest]\n"})
        assert result.green and sandbox.warm_runs == 0 and "pytest.ini" in sandbox.cold_reason
        (workspace / "sitecustomize.py").write_text("")  # Python imports it at start-up, from the copy
        result = sandbox.run(["tests/test_attack.py"], test)
        assert result.green and sandbox.warm_runs == 0 and "sitecustomize" in sandbox.cold_reason
        (workspace / "sitecustomize.py").unlink()
        result = sandbox.run(["tests/test_attack.py"], test)
        assert result.green and sandbox.warm_runs == 1


def _installed_plugin() -> str | None:
    from importlib import metadata

    found = metadata.entry_points().select(group="pytest11")
    names = sorted(ep.name for ep in found if ep.name != "editseq")
    return names[0] if names else None


@pytest.mark.skipif(_installed_plugin() is None, reason="no third-party pytest plugin installed")
def test_a_configuration_that_blocks_a_plugin_the_runner_loaded_is_honoured(workspace):
    """The run's ini blocks a plugin the warm runner imported: that run goes cold (as configured),
    and the runner warms up again without the plugin, so the next run is warm and configured too."""
    name = _installed_plugin()
    (workspace / "pytest.ini").write_text(f"[pytest]\naddopts = -p no:{name}\n")
    body = f"def test_blocked(request):\n    assert not request.config.pluginmanager.has_plugin({name!r})\n"
    with Sandbox(workspace, limits=LIMITS, warm=True) as sandbox:
        first = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": body})
        assert first.green and sandbox.warm_runs == 0 and name in sandbox.cold_reason
        second = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": body})
        assert second.green and sandbox.warm_runs == 1, sandbox.cold_reason


def test_a_second_run_at_the_same_time_goes_cold(workspace):
    import threading

    body = "import time\n\ndef test_slow():\n    time.sleep(1.5)\n"
    results = []
    with Sandbox(workspace, limits=LIMITS, warm=True) as sandbox:
        sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": "def test_ok():\n    pass\n"})  # warm
        threads = [threading.Thread(target=lambda: results.append(
            sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": body}))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [r.green for r in results] == [True, True]
        assert sandbox.warm_runs == 2 and sandbox.cold_reason == "another run holds the warm runner"


def test_the_warm_runner_is_a_switch_and_closing_stops_it(workspace, monkeypatch):
    monkeypatch.setenv("EDITSEQ_SANDBOX_WARM", "0")
    assert Sandbox(workspace).warm is False
    monkeypatch.setenv("EDITSEQ_SANDBOX_WARM", "1")
    sandbox = Sandbox(workspace, limits=LIMITS)
    assert sandbox.warm is True
    assert sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": "def test_ok():\n    pass\n"}).green
    zygote = sandbox._warm.zygote
    assert sandbox.warm_runs == 1 and zygote is not None and zygote.alive
    session, proc = zygote.session, zygote.proc
    sandbox.close()
    assert proc.poll() is not None and not session.exists()
    assert sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": "def test_ok():\n    pass\n"}).green
    assert sandbox.warm_runs == 2  # a new runner for the next run
    sandbox.close()


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_version_manager_shim_is_resolved_and_its_variables_stay_out(workspace, tmp_path, runner):
    """A pyenv shim picks the interpreter on every start and exports ``PYENV_*``: it is asked once
    for the real executable, which the runs then use."""
    import sys

    real = sys.executable  # as the interpreter names itself (a virtualenv's python is a link)
    shim = tmp_path / "bin" / "python3"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nexport PYENV_VERSION=fake PYENV_ROOT=/nowhere\nexec {real} \"$@\"\n")
    shim.chmod(0o755)
    with Sandbox(workspace, python=str(shim), limits=LIMITS, warm=runner == "warm",
                 env={"REAL": real}) as sandbox:
        assert sandbox.python == str(shim) and sandbox.executable == real
        body = """
            import os, sys

            def test_interpreter():
                assert sys.executable == os.environ["REAL"]
                assert not [name for name in os.environ if name.startswith("PYENV_")]
        """
        result = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": textwrap.dedent(body)})
        assert result.green, [(t.node_id, t.message) for t in result.tests]


def test_what_a_workspace_shadows_and_paths_made_absolute(tmp_path):
    from model_runtime.sandbox.warm import absolute_options, shadowed_module

    root = tmp_path / "copy"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "data").mkdir()
    (root / "tool.py").write_text("")
    loaded = {"os": False, "data": False, "google": True}
    assert shadowed_module([root], loaded) is None  # a plain folder joins only a namespace package
    assert shadowed_module([root], {**loaded, "tool": False}) == "tool"
    assert shadowed_module([root], {**loaded, "pkg": False}) == "pkg"
    assert shadowed_module([root], {**loaded, "tool": False}, own=("tool",)) is None
    (root / "google").mkdir()
    assert shadowed_module([root], loaded) == "google"
    assert absolute_options(["-c", "ci/pytest.ini", "-p", "no:x", "--confcutdir=sub", "-cother.ini"], tmp_path) == [
        "-c", str(tmp_path / "ci/pytest.ini"), "-p", "no:x", f"--confcutdir={tmp_path / 'sub'}",
        f"-c{tmp_path / 'other.ini'}"]


def test_a_warm_runner_started_by_a_thread_that_ends_keeps_serving(workspace):
    """bubblewrap's ``--die-with-parent`` follows the thread that started it: a runner started from a
    worker thread must not die with that thread (the evaluation runs from a thread pool)."""
    import threading

    results = []
    with Sandbox(workspace, limits=LIMITS, warm=True) as sandbox:
        for _ in range(3):
            thread = threading.Thread(target=lambda: results.append(
                sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": "def test_ok():\n    pass\n"})))
            thread.start()
            thread.join()
        assert [r.green for r in results] == [True] * 3
        assert sandbox.warm_runs == 3 and sandbox._warm.starts == 1, sandbox.cold_reason
