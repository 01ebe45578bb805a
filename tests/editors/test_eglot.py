"""Emacs's built-in eglot with editors/emacs/editseq.el, in a real batch Emacs, against the real server.

The model is the real embedded default (a repair ranker: it fixes these one-edit
bugs, and cannot write ``clear``, so the write run is the one that is cancelled).
Emacs >= 30 is looked for on PATH: the package needs 29.1, but the driver uses
Emacs 30's eglot (``eglot-execute``, codeAction/resolve), the code paths it tests.
CI installs Emacs 30.1 from bookworm-backports
(``editors/emacs/scripts/install-emacs.sh``) and then sets
``EDITSEQ_REQUIRE_EMACS=1``, which turns a missing Emacs from a skip into a failure.

The test runs ``emacs --batch -Q -l editors/emacs/tests/e2e.el -- FILE OUT.json``
with HOME and the XDG folders in ``tmp_path``. The driver loads the package,
starts eglot on FILE through the package's ``eglot-server-programs`` entry, and
drives one session (code actions, a cancelled ``editseq-write``, ``pytest
--editseq`` and its Flymake diagnostics, ``editseq-refine`` with ``$/progress``,
``codeAction/resolve`` of a step and of the quick fix, pytest again and the
diagnostics cleared); every wait in it is bounded and it exits non-zero on any
error. It writes what happened as JSON; the assertions are here.
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
PACKAGE = REPO / "editors" / "emacs"
DRIVER = PACKAGE / "tests" / "e2e.el"
#: The server from this interpreter's environment (``editseq serve``, without relying on PATH).
SERVER_CMD = [sys.executable, "-m", "model_runtime.cli", "serve"]

SOURCE = '''\
# Checks — café ✓ (non-ASCII: eglot negotiates utf-32 columns)


def clear(self):
    """D.clear() -> None.  Remove all items from D."""


def double(x):
    return x * 3


def is_adult(age):
    return age > 18
'''
TESTS = '''\
from geometry import double, is_adult


def test_double():
    assert double(2) == 4


def test_is_adult():
    assert is_adult(18)
    assert not is_adult(17)
'''
#: 1-based lines: in ``clear``'s docstring, ``double``'s def (where its diagnostic is), ``is_adult``'s body.
WRITE_LINE, FIX_LINE, REFINE_LINE = 5, 8, 13
#: The diagnostics' lines: the function each failing test calls.
DIAGNOSTIC_LINES = {"test_double": 8, "test_is_adult": 12}
#: resolveTimeout: long enough for the quick fix's run to end inside codeAction/resolve on a slow machine.
SETTINGS = {"resolveTimeout": 20.0, "timeout": 60}


def find_emacs() -> str:
    """``emacs`` >= 30 on PATH; else a skip, or a failure when EDITSEQ_REQUIRE_EMACS=1 (CI installed it)."""
    emacs = shutil.which("emacs")
    reason = None
    if emacs is None:
        reason = "no emacs on PATH (the eglot test needs Emacs >= 30: bash editors/emacs/scripts/install-emacs.sh)"
    else:
        version = subprocess.run([emacs, "--version"], capture_output=True, text=True, timeout=30).stdout
        match = re.search(r"GNU Emacs (\d+)\.(\d+)", version)
        if not match or int(match.group(1)) < 30:
            found = match.group(0) if match else repr(version[:80])
            reason = f"{emacs} is {found}; the eglot test needs Emacs >= 30 (editors/emacs/scripts/install-emacs.sh)"
    if reason is not None:
        if os.environ.get("EDITSEQ_REQUIRE_EMACS") == "1":
            pytest.fail(f"EDITSEQ_REQUIRE_EMACS=1 but {reason}")
        pytest.skip(reason)
    return emacs


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'ws'\nversion = '0'\n")
    (root / "geometry.py").write_text(SOURCE)
    (root / "test_geometry.py").write_text(TESTS)
    return root / "geometry.py"


def run_emacs(tmp_path: Path, file: Path, *, timeout: float = 150) -> tuple[dict, subprocess.CompletedProcess]:
    emacs = find_emacs()
    out = tmp_path / "report.json"
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "home")
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = tmp_path / ("home" if name == "HOME" else f"xdg/{name.lower()}")
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    env.update({
        "EDITSEQ_EMACS_PACKAGE": str(PACKAGE),
        "EDITSEQ_CMD": json.dumps(SERVER_CMD),
        "EDITSEQ_SETTINGS": json.dumps(SETTINGS),
        "EDITSEQ_PYTHON": sys.executable,
        "EDITSEQ_WRITE_LINE": str(WRITE_LINE),
        "EDITSEQ_REFINE_LINE": str(REFINE_LINE),
        "EDITSEQ_FIX_LINE": str(FIX_LINE),
        "EDITSEQ_TIMEOUT": str(int(timeout - 10)),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    })
    proc = subprocess.run([emacs, "--batch", "-Q", "-l", str(DRIVER), "--", str(file), str(out)],
                          cwd=file.parent, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    report = json.loads(out.read_text()) if out.exists() else {}
    assert proc.returncode == 0, (
        f"emacs exited {proc.returncode}: {report.get('error')}\nstderr:\n{proc.stderr[-4000:]}\n"
        f"events:\n{report.get('events', '')[-6000:]}")
    assert report, f"the driver wrote no report\nstderr:\n{proc.stderr}"
    return report, proc


def _column(line: str, character: int, encoding: str) -> int:
    """The index in ``line`` of an LSP ``character`` in ``encoding``."""
    if encoding == "utf-32":
        return character
    unit = {"utf-8": ("utf-8", 1), "utf-16": ("utf-16-le", 2)}[encoding]
    return len(line.encode(unit[0])[: character * unit[1]].decode(unit[0]))


def apply_lsp_edit(text: str, edit: dict, uri: str, encoding: str) -> str:
    """``text`` after the ``WorkspaceEdit`` ``edit``'s edits to ``uri``."""
    edits = list((edit.get("changes") or {}).get(uri, []))
    for change in edit.get("documentChanges") or []:
        if change["textDocument"]["uri"] == uri:
            edits += change["edits"]
    assert edits, f"the workspace edit has no edit for {uri}: {edit}"
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def offset(position: dict) -> int:
        n = position["line"]
        return starts[n] + _column(lines[n], position["character"], encoding)

    for e in sorted(edits, key=lambda e: offset(e["range"]["start"]), reverse=True):
        text = text[: offset(e["range"]["start"])] + e["newText"] + text[offset(e["range"]["end"]):]
    return text


def test_eglot_session_offers_runs_applies_and_clears(tmp_path):
    file = workspace(tmp_path)
    uri = file.as_uri()
    started = time.monotonic()
    report, _ = run_emacs(tmp_path, file)
    elapsed = time.monotonic() - started

    # The package registered the server with eglot, which started it with the package's options.
    assert int(report["emacs_version"].split(".")[0]) >= 30
    assert report["registered"] is True and report["major_mode"] == "python-mode"
    assert report["server_class"] == "editseq-server"
    assert report["server_info"]["name"] == "editseq"
    assert Path(report["root"]) == file.parent
    assert report["init_options"] == {"trustedWorkspace": False, **SETTINGS}
    assert report["code_action_provider"]["resolveProvider"] is True
    assert {"editseq.write", "editseq.refine"} <= set(report["commands"])
    encoding = report["position_encoding"] or "utf-16"
    assert report["before"] == SOURCE

    # (a) Code actions: write at the docstring-only function; nothing to refine before tests are known.
    assert report["write_titles"] == ["editseq: write clear edit by edit"], report["write_titles"]
    assert report["write_kinds"] == ["refactor.rewrite.editseq"]
    assert report["refine_titles_before"] == [], report["refine_titles_before"]

    # M-x editseq-write, cancelled with M-x editseq-cancel as its progress began: the request settled as
    # cancelled, the server ended its progress, nothing changed.
    assert report["pending_after_write"] == 1
    assert report["cancelled_result"] is None
    assert report["cancelled_error"]["code"] == -32800, report["cancelled_error"]
    cancelled = report["cancelled_progress"]
    assert cancelled[0]["kind"] == "begin" and cancelled[0]["title"] == "editseq write clear", cancelled
    assert cancelled[-1]["kind"] == "end" and cancelled[-1]["message"] == "cancelled", cancelled
    assert report["cancelled_unchanged"] is True and report["pending_after_cancel"] == 0

    # (d) The real pytest plugin's report became one Flymake error per failing test, on the function it calls.
    assert report["pytest_red"]["exit"] == 1, report["pytest_red"]["output"]
    red = report["diagnostics_red"]
    assert len(red) == 2, red
    for test, line in DIAGNOSTIC_LINES.items():
        (diagnostic,) = [d for d in red if f"[{test}]" in d["text"]]
        assert diagnostic["line"] == line and diagnostic["type"] == "eglot-error", diagnostic
        assert diagnostic["text"].startswith(f"pytest [{test}]: {test} failed: "), diagnostic

    # (c) M-x editseq-refine: $/progress from begin to end, and the answer (not blocking Emacs).
    assert report["refine_error"] is None, report["refine_error"]
    result = report["refine_result"]
    assert result["verified"] is True and result["steps"] >= 1, result
    assert (result["passed"], result["total"]) == (1, 1), result
    progress = report["refine_progress"]
    assert progress[0]["kind"] == "begin" and progress[0]["title"] == "editseq refine is_adult", progress
    assert progress[-1] == {**progress[-1], "kind": "end", "message": result["summary"]}, progress
    assert len({p["token"] for p in progress}) == 1, progress
    assert report["pending_after_refine"] == 0
    assert report["progress_reporters"] >= 1  # eglot's own mode-line reporter followed it
    assert {"loading", "ready", "busy"} <= set(report["statuses"]), report["statuses"]

    # (b) Its steps became code actions; the last (all steps, the verified one) was resolved and eglot
    # applied exactly the resolved edit.
    steps = report["step_titles"]
    assert len(steps) == result["steps"], steps
    whole = "step 1/1" if len(steps) == 1 else f"steps 1-{len(steps)}"
    assert steps[-1].startswith(f"editseq: is_adult {whole}, passes 1/1 tests"), steps
    assert report["step_preferred"][-1] is True
    step_edit = report["step_resolved"]["edit"]
    assert report["step_after"] == apply_lsp_edit(report["step_before"], step_edit, uri, encoding)
    assert report["step_after"] != report["step_before"]
    assert "def double(x):\n    return x * 3\n" in report["step_after"]  # only is_adult changed

    # (b) The quick fix in double's diagnostic: resolved (the run happens inside codeAction/resolve,
    # within resolveTimeout) to an edit, which eglot applied.
    assert report["fix_titles"] == ["editseq: fix test_double", "editseq: refine double until tests pass"], \
        report["fix_titles"]
    assert report["fix_kinds"] == ["quickfix.editseq", "refactor.rewrite.editseq"]
    fix = report["fix_resolved"]
    assert "edit" in fix and "command" not in fix, fix
    assert fix["diagnostics"][0]["data"]["test"] == "test_geometry.py::test_double"
    assert report["fix_before"] == report["step_after"]
    assert report["fix_after"] == apply_lsp_edit(report["fix_before"], fix["edit"], uri, encoding)
    assert report["fix_after"] != report["fix_before"]
    assert report["applied_edits"] == [step_edit, fix["edit"]]
    ast.parse(report["fix_after"])

    # (d) Saved, tested again: green, and the diagnostics cleared.
    assert report["saved"] == report["fix_after"] == file.read_text()
    assert report["pytest_green"]["exit"] == 0, report["pytest_green"]["output"]
    assert report["diagnostics_green"] == []
    assert report["status"] == "ready"
    assert report["server_exited"] is True

    problems = [m for m in report["messages"] if m["type"] <= 2]  # Error, Warning
    assert problems == [], problems
    print(f"eglot test: refine {report['refine_seconds']:.1f} s, fix in resolve {report['fix_seconds']:.1f} s; "
          f"{elapsed:.1f} s in all")
    assert elapsed < 90, f"the Emacs run took {elapsed:.1f} s"
