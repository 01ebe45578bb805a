"""Attacks on the sandbox, in both modes: bubblewrap where it runs, the ``unshare`` fallback otherwise.

Each test reproduces an attack that succeeded before bubblewrap (a host Unix
socket, the real workspace written by absolute path, a secret in the home
folder, files left in ``/tmp``, the disk filled, links to ``/proc``) and shows
it held: in both modes where the defence is the runner's own (the shadow copy,
the disk limit), and under bubblewrap where only a mount namespace can hold it
(the fallback's result is asserted too, so the README's "not prevented" list
stays true).
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
BWRAP = Sandbox(Path(__file__).parent).in_force == "bubblewrap"
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap is not installed or cannot run here (.ci/run installs it)")
MODES = [pytest.param("bubblewrap", marks=needs_bwrap), "namespaces"]


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    return root


def _run(workspace: Path, mode: str, body: str, limits: SandboxLimits = LIMITS, **env):
    sandbox = Sandbox(workspace, limits=limits, mode=mode, env={k: str(v) for k, v in env.items()})
    assert sandbox.in_force == mode
    result = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": textwrap.dedent(body)})
    assert result.status == "completed", (result.status, result.reason, result.stderr[-500:])
    return result


def _outcomes(result) -> dict[str, str]:
    return {t.node_id.rpartition("::")[2]: t.outcome for t in result.tests}


@pytest.mark.parametrize("mode", MODES)
def test_a_host_unix_socket_is_out_of_reach_under_bubblewrap(workspace, tmp_path, mode):
    path = tmp_path / f"agent-{uuid.uuid4().hex[:8]}.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)
        result = _run(workspace, mode, """
            import os, socket

            def test_reach_the_host():
                with socket.socket(socket.AF_UNIX) as client:
                    client.connect(os.environ["SOCKET"])
                    client.sendall(b"secrets")
        """, SOCKET=path)
    reached = _outcomes(result)["test_reach_the_host"] == "passed"
    assert reached is (mode == "namespaces")  # the fallback has no mount namespace: documented


@pytest.mark.parametrize("mode", MODES)
def test_the_real_workspace_home_and_tmp_are_out_of_reach_under_bubblewrap(workspace, mode):
    secret = Path.home() / f".editseq-test-secret-{uuid.uuid4().hex[:8]}"
    secret.write_text("id_rsa\n")
    leftover = Path("/tmp") / f"editseq-leftover-{uuid.uuid4().hex[:8]}"
    try:
        result = _run(workspace, mode, """
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


@pytest.mark.parametrize("mode", MODES)
def test_the_disk_limit_bounds_everything_a_run_writes(workspace, mode):
    """12 files of 8 MiB under a 64 MiB per-file cap filled the disk before; now the run is stopped."""
    limits = SandboxLimits(timeout_s=30, cpu_s=30, disk_bytes=32 * 1024 * 1024, file_bytes=64 * 1024 * 1024)
    sandbox = Sandbox(workspace, limits=limits, mode=mode)
    body = """
        import os, time

        def test_fill_the_disk():
            for i in range(12):
                with open(f"fill-{i}.bin", "wb") as out:
                    out.write(os.urandom(8 * 1024 * 1024))
            time.sleep(5)
    """
    result = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": textwrap.dedent(body)})
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


@pytest.mark.parametrize("mode", MODES)
def test_a_workspace_linking_to_proc_runs_normally(workspace, mode):
    os.symlink("/proc/self/environ", workspace / "environ")
    os.symlink("/proc/self/mem", workspace / "mem")
    result = _run(workspace, mode, """
        from pathlib import Path

        def test_no_environ_to_read():
            assert not Path("environ").exists() and not Path("mem").exists()
    """)
    assert result.green


def test_an_unknown_mode_is_refused(workspace):
    with pytest.raises(SandboxError, match="mode"):
        Sandbox(workspace, mode="docker")


@pytest.mark.parametrize("mode", MODES)
def test_the_results_channel_is_in_no_argument_or_variable_and_not_inherited(workspace, mode):
    """Before: the results file was in ``sys.argv``; a test appended "passed" records and exited 0."""
    result = _run(workspace, mode, """
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


@pytest.mark.parametrize("mode", MODES)
def test_forged_results_that_disagree_with_the_exit_status_are_not_trusted(workspace, mode):
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
    sandbox = Sandbox(workspace, limits=LIMITS, mode=mode)
    result = sandbox.run(["tests/test_attack.py"], {"tests/test_attack.py": textwrap.dedent(body)})
    assert not result.green and result.status == "crashed" and "not trusted" in result.reason, result.reason
