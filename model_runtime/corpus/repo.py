"""Instruction/program pairs from a repository's own code.

Fine-tuning on a user's codebase needs pairs like the public instruction
data: a request in words and the code that answers it. Every function,
method and class with a docstring is one pair. A function's instruction is
the one the editor builds for it at inference time
(:mod:`model_runtime.prompting.instruction`: signature, docstring and nearby context);
a class's is its name and docstring. The program is the definition itself,
dedented, preceded by the module's import statements it refers to so that
the program stands on its own and lints clean.

Files are those git would track: ``git ls-files`` where the folder is in a
work tree, otherwise a walk that honours every ``.gitignore`` on the way
(pathspec's gitignore rules). Installed code (the standard library,
site-packages) is walked without asking git, since an interpreter may live
inside an unrelated work tree that ignores it (pyenv's checkout does), with
extra folders skipped (tests, demos).

A definition whose signature and docstring alone exceed the instruction's
token budget is skipped and counted: cutting its docstring would ask for a
different function.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from model_runtime.lintseq.sampler import SkipReason
from model_runtime.lintseq.data import Program

__all__ = ["RepoScan", "extract_pairs", "iter_python_files", "read_source", "repo_programs"]

#: Token budget (estimated) of a function's instruction; context beyond it is dropped.
INSTRUCTION_TOKENS = 512

_ALWAYS_SKIPPED_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".tox", ".nox"}


def iter_python_files(
    root: str | os.PathLike,
    *,
    use_git: bool = True,
    skip_dirs: Collection[str] = (),
    skip_file: Callable[[str], bool] | None = None,
) -> list[Path]:
    """Python files under ``root`` that are not ignored, as paths relative to ``root``, sorted.

    ``use_git=False`` always walks (still honouring ``.gitignore`` files).
    ``skip_dirs`` are folder names never entered and ``skip_file`` rejects
    file names; both apply to the walk and to git's list alike.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    skip_dirs = frozenset(skip_dirs)
    files = _git_files(root) if use_git else None
    if files is None:
        files = _walk_files(root, skip_dirs)
    elif skip_dirs:
        files = [f for f in files if not skip_dirs.intersection(f.parts[:-1])]
    if skip_file is not None:
        files = [f for f in files if not skip_file(f.name)]
    return sorted(files)


def _git_files(root: Path) -> list[Path] | None:
    try:
        inside = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
            capture_output=True, text=True, timeout=30,
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard",
             "--", "*.py"],
            capture_output=True, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    names = [n for n in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    # ls-files lists deleted-but-tracked files too; keep what exists.
    return [Path(n) for n in names if (root / n).is_file()]


def _walk_files(root: Path, skip_dirs: frozenset[str] = frozenset()) -> list[Path]:
    from pathspec import GitIgnoreSpec

    found: list[Path] = []
    specs: list[tuple[Path, GitIgnoreSpec]] = []

    def ignored(rel: Path, is_dir: bool) -> bool:
        for base, spec in specs:
            try:
                sub = rel.relative_to(base)
            except ValueError:
                continue
            if spec.match_file(sub.as_posix() + ("/" if is_dir else "")):
                return True
        return False

    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        # Specs of folders we have left are no longer relevant; keep ancestors only.
        specs[:] = [(b, s) for b, s in specs if b == Path(".") or b in rel_dir.parents or b == rel_dir]
        if ".gitignore" in filenames:
            try:
                text = (Path(dirpath) / ".gitignore").read_text(encoding="utf-8", errors="replace")
                specs.append((rel_dir, GitIgnoreSpec.from_lines(text.splitlines())))
            except OSError:
                pass
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in _ALWAYS_SKIPPED_DIRS and d not in skip_dirs
            and not (Path(dirpath) / d / "pyvenv.cfg").exists()
            and not ignored(rel_dir / d, True)
        )
        for name in sorted(filenames):
            if name.endswith(".py") and not ignored(rel_dir / name, False):
                found.append(rel_dir / name)
    return found


@dataclass(slots=True)
class RepoScan:
    """Counts of a repository scan, for the run's summary."""

    files: int = 0
    pairs: int = 0
    skipped_files: Counter = field(default_factory=Counter)
    #: Documented definitions left out, by reason (``instruction-too-long``).
    skipped_definitions: Counter = field(default_factory=Counter)


def extract_pairs(source: str, skipped: Counter | None = None,
                  instruction_tokens: int = INSTRUCTION_TOKENS) -> Iterator[tuple[str, str, str]]:
    """``(qualified name, instruction, program)`` for each documented definition in ``source``.

    Raises ``libcst.ParserSyntaxError`` for a file that does not parse.
    Functions whose signature and docstring exceed ``instruction_tokens``
    (estimated) are left out and counted in ``skipped`` as
    ``instruction-too-long``; below that, context is dropped to fit.
    """
    import libcst as cst

    from model_runtime.prompting.instruction import InstructionBuilder, InstructionTooLong

    module = cst.parse_module(source)
    builder = InstructionBuilder(module)
    imports = [stmt for stmt in module.body if _is_import(stmt)]

    def visit(body, prefix: str) -> Iterator[tuple[str, str, str]]:
        for stmt in body:
            if not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                continue
            name = prefix + stmt.name.value
            docstring = stmt.get_docstring()
            if docstring:
                code = textwrap.dedent(module.code_for_node(stmt)).strip("\n")
                used = _names_used(stmt)
                needed = [
                    module.code_for_node(i).strip("\n")
                    for i in imports
                    if _is_future(i) or _bound_names(i) & used
                ]
                program = "\n".join(needed) + ("\n\n\n" if needed else "") + code
                if isinstance(stmt, cst.ClassDef):
                    instruction = (f"Write a Python class `{stmt.name.value}` to solve the following "
                                   f"problem:\n{docstring}")
                else:
                    # The same instruction the editor builds at inference time, so
                    # a model tuned on this data sees prompts shaped like its users'.
                    try:
                        instruction = builder.build(name, max_tokens=instruction_tokens).text
                    except InstructionTooLong:
                        instruction = None
                        if skipped is not None:
                            skipped["instruction-too-long"] += 1
                if instruction is not None:
                    yield name, instruction, program
            if isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
                yield from visit(stmt.body.body, name + ".")

    yield from visit(module.body, "")


def _is_import(stmt) -> bool:
    import libcst as cst

    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
    )


def _bound_names(stmt) -> set[str]:
    import libcst as cst

    names = set()
    for small in stmt.body:
        if isinstance(small.names, cst.ImportStar):
            continue
        for alias in small.names:
            if alias.asname is not None:
                names.add(alias.asname.name.value)
            else:
                names.add(_dotted(alias.name).split(".")[0])
    return names


def _is_future(stmt) -> bool:
    """Future imports change how any code in the module compiles: always keep them."""
    import libcst as cst

    return any(
        isinstance(s, cst.ImportFrom) and s.module is not None and _dotted(s.module) == "__future__"
        for s in stmt.body
    )


def _dotted(node) -> str:
    import libcst as cst

    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _names_used(node) -> set[str]:
    import libcst as cst

    class Collector(cst.CSTVisitor):
        def __init__(self) -> None:
            self.names: set[str] = set()

        def visit_Name(self, name: cst.Name) -> None:
            self.names.add(name.value)

        def visit_SimpleString(self, string: cst.SimpleString) -> None:
            # String annotations ("List[int]") refer to names too.
            self.names.update(_identifiers(string.value))

    collector = Collector()
    node.visit(collector)
    return collector.names


def _identifiers(text: str) -> set[str]:
    import re

    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def read_source(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """``(text, None)`` for a readable UTF-8 text file, else ``(None, reason)``.

    Reasons: ``unreadable``, ``binary`` (a NUL byte), ``non-utf8``.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None, "unreadable"
    if b"\x00" in data:
        return None, SkipReason.BINARY.value
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, SkipReason.NON_UTF8.value


def repo_programs(root: str | os.PathLike, scan: RepoScan | None = None) -> Iterator[Program]:
    """Stream the repository's documented definitions as :class:`Program` rows.

    ``source_file`` is ``relative/path.py::Qualified.name``. Files that are
    binary, not UTF-8 or do not parse are counted in ``scan`` and skipped.
    """
    import libcst as cst

    scan = scan if scan is not None else RepoScan()
    root = Path(root)
    index = 0
    for rel in iter_python_files(root):
        scan.files += 1
        source, reason = read_source(root / rel)
        if source is None:
            scan.skipped_files[reason] += 1
            continue
        try:
            pairs = list(extract_pairs(source, scan.skipped_definitions))
        except (cst.ParserSyntaxError, RecursionError):
            scan.skipped_files[SkipReason.SYNTAX_ERROR.value] += 1
            continue
        for qualname, instruction, program in pairs:
            scan.pairs += 1
            yield Program(index, instruction, program, f"{rel.as_posix()}::{qualname}")
            index += 1
