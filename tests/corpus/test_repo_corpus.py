"""`editseq lintseq --from-repo`: a repository's documented code as training pairs."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from model_runtime.edits.editpath import resolve_edit_path
from model_runtime.lintseq.linters import PyflakesLinter
from model_runtime.prompting.instruction import build_instruction
from model_runtime.corpus.repo import INSTRUCTION_TOKENS, RepoScan, extract_pairs, iter_python_files, repo_programs

MODULE = textwrap.dedent('''
    """A module."""
    from __future__ import annotations

    import os
    import re as regex
    from typing import List, Optional

    import json


    def split_words(text: str) -> List[str]:
        """Split text into words."""
        return regex.findall(r"\\w+", text)


    def undocumented(x):
        return x


    class Finder:
        """Find files."""

        def __init__(self, root):
            self.root = root

        def find(self, name: Optional[str] = None):
            """Look for name under the root."""
            return os.path.join(self.root, name or "")
''')


def make_repo(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "words.py").write_text(MODULE)
    (root / "pkg" / "generated.py").write_text('def gen():\n    """Generated."""\n    return 1\n')
    (root / "pkg" / "sub").mkdir()
    (root / "pkg" / "sub" / ".gitignore").write_text("local_*.py\n")
    (root / "pkg" / "sub" / "local_notes.py").write_text('def note():\n    """Ignored by the nested rule."""\n')
    (root / "pkg" / "sub" / "kept.py").write_text('def kept():\n    """Kept."""\n    return 2\n')
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text('def built():\n    """Ignored."""\n')
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / ".venv" / "lib" / "site.py").write_text('def site():\n    """A venv file."""\n')
    (root / "latin1.py").write_bytes(b'def f():\n    """caf\xe9"""\n')
    (root / "broken.py").write_text('def broken(:\n    """Broken."""\n')
    (root / ".gitignore").write_text("build/\npkg/generated.py\n.venv/\n")


@pytest.fixture(params=["walk", "git"])
def repo(tmp_path, request):
    make_repo(tmp_path)
    if request.param == "git":
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        subprocess.run(["git", "-C", str(tmp_path), "add", "pkg/words.py"], check=True)
    return tmp_path


def test_files_honour_gitignore(repo):
    names = [p.as_posix() for p in iter_python_files(repo)]
    assert names == ["broken.py", "latin1.py", "pkg/sub/kept.py", "pkg/words.py"]


def test_pairs_and_scan_counts(repo):
    scan = RepoScan()
    programs = list(repo_programs(repo, scan))
    assert [p.source_file for p in programs] == [
        "pkg/sub/kept.py::kept",
        "pkg/words.py::split_words",
        "pkg/words.py::Finder",
        "pkg/words.py::Finder.find",
    ]
    assert scan.files == 4 and scan.pairs == 4
    assert dict(scan.skipped_files) == {"non-utf8": 1, "syntax-error": 1}
    assert [p.index for p in programs] == [0, 1, 2, 3]


def test_programs_bring_the_imports_they_use_and_lint_clean():
    pairs = {name: (instr, prog) for name, instr, prog in extract_pairs(MODULE)}
    instruction, program = pairs["split_words"]
    assert instruction.startswith("Write a Python function `split_words(text: str) -> List[str]` to "
                                  "solve the following problem:\nSplit text into words.\n")
    # the same instruction the editor builds for this function, context included
    assert instruction == build_instruction(MODULE, "split_words", max_tokens=INSTRUCTION_TOKENS).text
    assert "import re as regex" in instruction and "class Finder:" in instruction
    assert pairs["Finder.find"][0].startswith("Write a Python method `find(self, name: Optional[str] = None)`")
    assert program.startswith("from __future__ import annotations\nimport re as regex\n"
                              "from typing import List, Optional\n\n\ndef split_words")
    assert "import os" not in program and "import json" not in program
    method = pairs["Finder.find"][1]
    assert "import os" in method and method.splitlines()[-3].startswith("def find(self")
    assert pairs["Finder"][0].startswith("Write a Python class `Finder`")
    linter = PyflakesLinter()
    for _, program in pairs.values():
        assert linter.lint(program) == []


def test_cli_from_repo(repo, tmp_path):
    out = tmp_path / "pairs.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "lintseq", "--from-repo", str(repo), "-o", str(out),
         "-s", "2", "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8
    for row in rows:
        assert resolve_edit_path(row["edit_path"]).program.strip() == row["source_response"].strip()
    assert "repository: 4 files, 4 documented definitions" in proc.stdout
    assert "files skipped (non-utf8: 1, syntax-error: 1)" in proc.stdout


def test_from_repo_without_output_writes_where_git_ignores_it(repo):
    """``-o lintseq-paths.jsonl`` left an untracked file in the repository walked; without ``-o`` the
    paths go to ``.editseq/`` (its ``.gitignore`` ignores everything), and the next walk skips them."""
    proc = subprocess.run([sys.executable, "-m", "model_runtime.cli", "lintseq", "--from-repo", str(repo), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = repo / ".editseq" / "lintseq-paths.jsonl"
    assert f"; written to {out}" in proc.stdout and len(out.read_text().splitlines()) == 4
    assert (repo / ".editseq" / ".gitignore").read_text() == "*\n"
    assert all(".editseq" not in path.parts for path in iter_python_files(repo))
    proc = subprocess.run([sys.executable, "-m", "model_runtime.cli", "lintseq", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "give the output file (-o OUTPUT.jsonl)" in proc.stderr


def test_not_a_directory(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "lintseq", "--from-repo", str(tmp_path / "nope"),
         "-o", str(tmp_path / "o.jsonl")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "not a directory" in proc.stderr
