"""The shadow copy: a throwaway copy of the workspace that a run's tests may wreck.

Holds :func:`shadow_copy` (with :class:`ShadowPolicy`, what it leaves out, and
:class:`ShadowStats`, what it holds), :func:`relative` (the check that a
candidate path or test id stays inside the workspace), :func:`apply_files`
(writing the candidate files over the copy) and :func:`remove_tree` (deleting
the run folder, whatever the tests did to its permissions). Apart from the
process and the results because it is the part that keeps the user's tree
byte-identical, and the part the overhead benchmark times on its own.

Files are *copied*, not hard-linked: a hard link shares the inode, so a test
that rewrites a file in place (``open(path, "w")``) would rewrite the user's
file, and permission bits are per inode too, so a link cannot be made
read-only on one side only. ext4 has no reflinks. Copying is cheap enough:
40-80 ms for 200 files of 2-3 KB on a busy 2-core machine, against 3-5 ms for
hard links (``benchmarks/refine_overhead.py``), inside the 150 ms per-round
budget.

Skipped: ``.git`` and other VCS folders, virtualenvs (by name or by their
``pyvenv.cfg``), ``__pycache__``, ``node_modules``, tool caches; symlinked
folders (loops, and trees outside the workspace). Only regular files are
copied: a link to a regular file *inside* the workspace is copied as that file
(so writing through it cannot reach the target); a link out of the workspace
(``/proc/self/environ``, ``~/.ssh/id_rsa``), a FIFO, a socket or a device is
left out, so no secret, endless or blocking file reaches the tests. Over
:attr:`ShadowPolicy.max_bytes` the copy stops with :class:`SandboxError`.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from model_runtime.sandbox.errors import SandboxError

__all__ = ["ShadowPolicy", "ShadowStats", "apply_files", "relative", "remove_tree", "shadow_copy"]

_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ShadowPolicy:
    """What the shadow copy leaves out, and how big it may get."""

    max_bytes: int = 200 * _MiB
    skip_dirs: frozenset[str] = frozenset({
        ".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "__pycache__", "node_modules",
        ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
        ".eggs", ".idea", ".vscode",
    })


@dataclass(frozen=True, slots=True)
class ShadowStats:
    """What a shadow copy holds."""

    files: int
    bytes: int


def shadow_copy(workspace: Path, dest: Path, policy: ShadowPolicy = ShadowPolicy()) -> ShadowStats:
    """Copy ``workspace`` into ``dest`` (which must not exist) as the policy says."""
    stats = [0, 0]
    _copy_tree(workspace, dest, policy, stats, os.path.realpath(workspace))
    return ShadowStats(*stats)


def _copy_tree(src: Path, dest: Path, policy: ShadowPolicy, stats: list[int], root: str) -> None:
    os.mkdir(dest)
    with os.scandir(src) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in policy.skip_dirs and not os.path.exists(
                    os.path.join(entry.path, "pyvenv.cfg")
                ):
                    _copy_tree(Path(entry.path), dest / entry.name, policy, stats, root)
                continue
            source = _regular_file(entry, root)
            if source is None:
                continue
            stats[0] += 1
            stats[1] += os.stat(source).st_size
            if stats[1] > policy.max_bytes:
                raise SandboxError(
                    f"the workspace is larger than the shadow copy limit ({policy.max_bytes} bytes); "
                    "raise ShadowPolicy.max_bytes or skip large folders"
                )
            shutil.copyfile(source, dest / entry.name)
            shutil.copymode(source, dest / entry.name)


def _regular_file(entry: os.DirEntry, root: str) -> str | None:
    """What to copy for ``entry``: a regular file, or the regular file *inside the workspace* a link
    points to; ``None`` for anything else (a link out of the workspace, to ``/proc``, a FIFO, a socket,
    a device), which the tests never see."""
    if entry.is_file(follow_symlinks=False):
        return entry.path
    if not entry.is_symlink():
        return None
    target = os.path.realpath(entry.path)
    if not target.startswith(root.rstrip(os.sep) + os.sep):
        return None
    try:
        return target if stat.S_ISREG(os.stat(target).st_mode) else None
    except OSError:
        return None


def relative(path: str, what: str) -> PurePosixPath:
    """A workspace-relative path that stays inside the workspace, or :class:`SandboxError`."""
    rel = PurePosixPath(path.replace(os.sep, "/"))
    if not path or rel.is_absolute() or ".." in rel.parts or str(rel) == ".":
        raise SandboxError(f"{what} must be a path inside the workspace, relative to it: {path!r}")
    return rel


def apply_files(shadow: Path, files: Mapping[str, str]) -> None:
    """Write the candidate files (relative path -> text) over the shadow copy, never through a link."""
    for rel, text in files.items():
        target = shadow / relative(rel, "a candidate file")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_dir():
            raise SandboxError(f"a candidate file cannot replace a folder or a link: {rel}")
        with open(target, "w", encoding="utf-8", newline="") as out:
            out.write(text)


def remove_tree(path: Path) -> None:
    """Delete the run folder even where a test made files or folders read-only."""

    def retry(function, failed, _exc):
        os.chmod(os.path.dirname(failed), 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
        function(failed)

    handler = {"onexc": retry} if sys.version_info >= (3, 12) else {"onerror": retry}
    shutil.rmtree(path, **handler)
