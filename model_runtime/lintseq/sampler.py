"""LintSeq backward sampling: a program as a sequence of linter-clean insertions.

The algorithm is the paper's (Piterbarg, Pinto, Fergus, ICLR 2025), in the
production setting of its reference code (one random path per call):

1. pick a random deletable line, weighted toward deeper indentation;
2. delete it together with its indented children;
3. lint what is left and delete every line the linter flags (with *their*
   children), again and again until the program is clean: that union is one
   edit;
4. repeat until nothing deletable is left, then reverse the deletions into
   insertion edits from the empty file to the program.

Every intermediate state is therefore a program the linter finds clean.
Errors the original program already has count as induced by the first
deletion, as in the reference (``ignore_init_errors=False``).

Two choices differ from the reference, both to make the data cleaner without
changing what an edit is:

* Comment and blank lines are never seeds (as in the paper) and travel with
  the code line that follows them, so no edit inserts only blank lines and a
  comment arrives with the code it describes. Trailing ones go with the last
  code line.
* A multi-line UPPERCASE constant at module level (``CONFIG = [...]``) is
  found from the syntax tree, not from the text, and is deleted and inserted
  as one unit whatever bracket it uses.

The sampler works on line indices only; turning a path into diffs lives in
:mod:`model_runtime.edits.editpath`.
"""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from model_runtime.edits.editpath import insertion_diff

from .linters import Linter

__all__ = [
    "EditPath",
    "LintSeqOptions",
    "LintSeqSampler",
    "ProgramSkipped",
    "SkipReason",
    "prepare_program",
    "path_rng",
]


class SkipReason(str, Enum):
    """Why a program yields no path. Runs count these instead of stopping."""

    EMPTY = "empty"
    COMMENT_ONLY = "comment-only"
    SYNTAX_ERROR = "syntax-error"
    BINARY = "binary"
    NON_UTF8 = "non-utf8"
    INTERNAL_ERROR = "internal-error"
    #: Over :attr:`LintSeqOptions.max_lines`: one huge generated module must not stop a corpus run.
    TOO_LONG = "too-long"
    #: One path took longer than :attr:`LintSeqOptions.max_seconds`.
    TIME_LIMIT = "time-limit"


class ProgramSkipped(Exception):
    """Raised for a program LintSeq cannot or should not refactor."""

    def __init__(self, reason: SkipReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class LintSeqOptions:
    """Sampling options; the defaults are the paper's production setting."""

    #: Comment and blank lines are never picked as the line to delete.
    skip_trivia: bool = True
    #: Multi-line UPPERCASE module constants are deleted and inserted whole.
    keep_global_defs: bool = True
    #: Weight of a line indented ``k`` levels is ``k * indent_bias`` (level 0: 1).
    indent_bias: float = 1.0
    #: Deletion rounds before the rest of the program becomes the first edit.
    max_rounds: int = 512
    #: Longer programs are skipped (``too-long``): the cost of a path grows faster than the program.
    max_lines: int = 5000
    #: A path that takes longer is abandoned and the program skipped (``time-limit``).
    max_seconds: float = 60.0


def _is_trivia(line: str) -> bool:
    stripped = line.lstrip()
    return not stripped or stripped.startswith("#")


def prepare_program(code: str | bytes) -> list[str]:
    """Normalise a program into lines, or raise :class:`ProgramSkipped`.

    Newlines are normalised to ``\\n``; leading and trailing blank lines are
    dropped (paths reproduce the program compared after ``.strip()``).
    """
    if isinstance(code, bytes):
        if b"\x00" in code:
            raise ProgramSkipped(SkipReason.BINARY, "contains NUL bytes")
        try:
            code = code.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProgramSkipped(SkipReason.NON_UTF8, str(exc)) from None
    if "\x00" in code:
        raise ProgramSkipped(SkipReason.BINARY, "contains NUL characters")
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ProgramSkipped(SkipReason.NON_UTF8, str(exc)) from None
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    lines = code.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    lines = lines[start:]
    if not lines:
        raise ProgramSkipped(SkipReason.EMPTY)
    if all(_is_trivia(line) for line in lines):
        raise ProgramSkipped(SkipReason.COMMENT_ONLY)
    try:
        ast.parse("\n".join(lines))
    except SyntaxError as exc:
        raise ProgramSkipped(SkipReason.SYNTAX_ERROR, f"line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ProgramSkipped(SkipReason.SYNTAX_ERROR, f"{type(exc).__name__}: {exc}") from None
    return lines


def path_rng(seed: int, index: int, path: int) -> random.Random:
    """The random stream of one path, independent of workers and batching."""
    return random.Random(f"lintseq:{seed}:{index}:{path}")


@dataclass(slots=True)
class EditPath:
    """One sampled path: the program's lines and, per edit, the lines it inserts."""

    lines: list[str]
    #: In insertion order; each a sorted list of indices into ``lines``.
    steps: list[list[int]]
    #: Linter probes spent sampling this path.
    lint_calls: int = 0

    @property
    def program(self) -> str:
        return "\n".join(self.lines)

    def states(self) -> Iterator[str]:
        """The program after each edit, from the first to the whole program."""
        present = [False] * len(self.lines)
        for step in self.steps:
            for i in step:
                present[i] = True
            yield "\n".join(line for line, keep in zip(self.lines, present) if keep)

    def diffs(self) -> list[str]:
        """The edits as zero-context unified diffs (the reference's format)."""
        present = [False] * len(self.lines)
        out = []
        for step in self.steps:
            new = set(step)
            idx = [i for i in range(len(self.lines)) if present[i] or i in new]
            out.append(insertion_diff([self.lines[i] for i in idx], [i in new for i in idx]))
            for i in step:
                present[i] = True
        return out


@dataclass(slots=True)
class _Structure:
    """What the sampler precomputes once per program."""

    candidates: list[int]
    weights: list[float]
    #: For every line, the half-open range of lines deleted with it.
    span: list[tuple[int, int]] = field(default_factory=list)


class LintSeqSampler:
    """Samples LintSeq edit paths for programs with one linter and one set of options."""

    def __init__(self, linter: Linter, options: LintSeqOptions | None = None) -> None:
        self.linter = linter
        self.options = options or LintSeqOptions()

    # -- structure -----------------------------------------------------------------

    def _structure(self, lines: Sequence[str]) -> _Structure:
        opts = self.options
        n = len(lines)
        # Structural lines form the indentation tree; with ``skip_trivia`` the
        # comment and blank lines join the unit of the code line after them.
        structural = [i for i in range(n) if not (opts.skip_trivia and _is_trivia(lines[i]))]
        if not structural:
            return _Structure([], [], [(0, n)] * n)

        # Units: contiguous line ranges always deleted together, one boundary
        # after each structural line (the last unit takes the trailing trivia).
        if opts.skip_trivia:
            starts = {0, *(s + 1 for s in structural[:-1])}
        else:
            starts = set(range(n))
        if opts.keep_global_defs:
            for first, end in _global_def_spans("\n".join(lines)):
                starts.difference_update(range(first + 1, end + 1))
        ordered = sorted(starts)
        unit_of = [0] * n
        bounds = []
        for k, lo in enumerate(ordered):
            hi = ordered[k + 1] if k + 1 < len(ordered) else n
            bounds.append((lo, hi))
            for j in range(lo, hi):
                unit_of[j] = k

        # Effective indentation: a line with at most one non-space character
        # (a closing bracket, a blank line) inherits the previous one's, as in
        # the reference.
        indent = {}
        current = 0
        for s in structural:
            stripped = lines[s].lstrip()
            if len(stripped) > 1:
                current = len(lines[s]) - len(stripped)
            indent[s] = current
        tab = next((indent[s] for s in structural if indent[s] > 0), 0)

        # Children of a structural line: the following structural lines
        # indented deeper, up to the first that is not (one pass with a stack).
        # Only the last child matters, since children are contiguous.
        last_child = {}
        stack: list[int] = []
        for pos, s in enumerate(structural):
            while stack and indent[structural[stack[-1]]] >= indent[s]:
                top = stack.pop()
                if pos - 1 > top:
                    last_child[structural[top]] = structural[pos - 1]
            stack.append(pos)
        for top in stack:
            if len(structural) - 1 > top:
                last_child[structural[top]] = structural[-1]

        unit_span = []
        for lo, hi in bounds:
            end = hi
            for s in range(lo, hi):
                child = last_child.get(s)
                if child is not None:
                    end = max(end, bounds[unit_of[child]][1])
            unit_span.append((lo, end))
        span = [unit_span[unit_of[i]] for i in range(n)]

        candidates = []
        seen_units = set()
        for s in structural:
            if unit_of[s] not in seen_units:
                seen_units.add(unit_of[s])
                candidates.append(s)
        weights = [
            1.0 if indent[s] == 0 or not tab else indent[s] / tab * opts.indent_bias
            for s in candidates
        ]
        return _Structure(candidates, weights, span)

    # -- sampling ------------------------------------------------------------------

    def sample(self, lines: Sequence[str], rng: random.Random) -> EditPath:
        """Sample one edit path for ``lines`` (as returned by :func:`prepare_program`).

        Raises :class:`ProgramSkipped` for a program over ``max_lines``, or one
        whose path runs past ``max_seconds``, so that no single program can stop
        a run.
        """
        lines = list(lines)
        n = len(lines)
        if n > self.options.max_lines:
            raise ProgramSkipped(SkipReason.TOO_LONG, f"{n} lines (max_lines is {self.options.max_lines})")
        deadline = time.monotonic() + self.options.max_seconds
        structure = self._structure(lines)
        alive = [True] * n
        deletions: list[list[int]] = []
        lint_calls = 0
        cands = list(zip(structure.candidates, structure.weights))

        for _ in range(self.options.max_rounds):
            if time.monotonic() > deadline:
                raise ProgramSkipped(SkipReason.TIME_LIMIT, f"one path took over {self.options.max_seconds:g} s")
            cands = [(c, w) for c, w in cands if alive[c]]
            if not cands:
                break
            seed = rng.choices([c for c, _ in cands], weights=[w for _, w in cands])[0]
            removed: list[int] = []
            affected = {seed}
            while affected:
                for line in affected:
                    lo, hi = structure.span[line]
                    for j in range(lo, hi):
                        if alive[j]:
                            alive[j] = False
                            removed.append(j)
                kept = [i for i in range(n) if alive[i]]
                if not kept:
                    break
                errors = self.linter.lint("\n".join(lines[i] for i in kept))
                lint_calls += 1
                affected = {kept[min(max(e.line, 1), len(kept)) - 1] for e in errors}
            deletions.append(sorted(removed))

        leftover = [i for i in range(n) if alive[i]]
        if leftover:
            deletions.append(leftover)
        return EditPath(lines=lines, steps=deletions[::-1], lint_calls=lint_calls)

    def sample_paths(
        self, code: str | bytes, count: int, seed: int = 0, index: int = 0
    ) -> list[EditPath]:
        """``count`` independent paths for one program; raises :class:`ProgramSkipped`."""
        lines = prepare_program(code)
        return [self.sample(lines, path_rng(seed, index, k)) for k in range(count)]


def _global_def_spans(source: str) -> list[tuple[int, int]]:
    """0-based (first, last) lines of multi-line UPPERCASE assignments at module level."""
    spans = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        names = [t for t in targets if isinstance(t, ast.Name)]
        if len(names) != len(targets) or not all(t.id.isupper() for t in names):
            continue
        if node.end_lineno and node.end_lineno > node.lineno:
            spans.append((node.lineno - 1, node.end_lineno - 1))
    return spans
