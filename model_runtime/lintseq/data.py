"""LintSeq data generation over JSONL files: streaming, parallel, atomic.

Rows are read lazily and handed to worker processes in bounded batches, so
memory stays constant however large the input is; output rows come back in
input order and go to a temporary file that replaces the destination only
when the run succeeds. Bad *programs* (empty, comment-only, broken syntax,
binary, non-UTF-8) never stop a run: they are counted by reason. Bad *input*
(an unreadable file, a line that is not JSON, a missing field) stops it with
an error naming the file and line, since the data set itself is wrong.

Output rows follow the reference tools' schema: ``edit_path`` (list of diff
strings), ``index`` (row number in the input), ``source_file``,
``source_<prompt-field>`` and ``source_<code-field>``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from model_runtime.errors import EditseqError

from .sampler import (
    LintSeqOptions,
    LintSeqSampler,
    ProgramSkipped,
    SkipReason,
    check_size,
    path_rng,
    prepare_program,
)

__all__ = [
    "InputError",
    "LintSeqJob",
    "Program",
    "RunSummary",
    "read_jsonl_programs",
    "run_lintseq",
    "unwrap_fences",
]


class InputError(EditseqError):
    """The input itself is wrong (unreadable, not JSON, missing field); names the line."""


@dataclass(frozen=True, slots=True)
class Program:
    """One input row: its index, instruction, code, and where it came from."""

    index: int
    instruction: str
    code: str
    source_file: str
    #: Set when the row is already known to be unusable (e.g. not UTF-8).
    skip: SkipReason | None = None


@dataclass(frozen=True, slots=True)
class LintSeqJob:
    """Settings of one data-generation run (the CLI's flags)."""

    code_field: str = "response"
    prompt_field: str = "instruction"
    paths_per_sample: int = 1
    seed: int = 0
    workers: int = 1
    linter: str = "pyflakes"
    num_samples: int | None = None
    options: LintSeqOptions = field(default_factory=LintSeqOptions)
    #: Programs per batch handed to a worker.
    batch_size: int = 16


@dataclass(slots=True)
class RunSummary:
    programs: int = 0
    paths: int = 0
    lint_calls: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def line(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        return (
            f"lintseq: {self.programs} programs, {self.paths} paths, "
            f"{skipped} skipped{f' ({reasons})' if reasons else ''}, "
            f"{self.lint_calls} lint calls, {self.seconds:.2f} s"
        )


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def unwrap_fences(text: str) -> str:
    """Keep only the code of Markdown-fenced Python blocks, joined; text without fences is kept."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return text
    return "\n".join(block.strip("\n") for block in blocks).strip()


def read_jsonl_programs(
    path: str | os.PathLike, code_field: str = "response", prompt_field: str = "instruction"
) -> Iterator[Program]:
    """Stream the programs of a JSONL file, raising :class:`InputError` on bad input.

    Blank lines are ignored. A line that is not valid UTF-8 is decoded with
    ``surrogateescape`` so that one bad program is skipped (``non-utf8``)
    instead of failing the run.
    """
    name = os.fspath(path)
    try:
        handle = open(name, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    index = 0
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8", "surrogateescape")
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{name}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise InputError(f"{name}:{lineno}: the JSON is nested too deeply to read") from None
            if not isinstance(row, dict):
                raise InputError(f"{name}:{lineno}: expected a JSON object, got {type(row).__name__}")
            values = []
            for key in (prompt_field, code_field):
                if key not in row:
                    fields = ", ".join(sorted(map(str, row))) or "none"
                    raise InputError(f"{name}:{lineno}: missing field {key!r} (fields: {fields})")
                if not isinstance(row[key], str):
                    raise InputError(
                        f"{name}:{lineno}: field {key!r} is {type(row[key]).__name__}, expected a string"
                    )
                values.append(row[key])
            skip = None
            if any(_has_surrogates(v) for v in values):
                skip = SkipReason.NON_UTF8
            yield Program(index, values[0], values[1], name, skip)
            index += 1


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# -- workers ---------------------------------------------------------------------------

_SAMPLER: LintSeqSampler | None = None


def _init_worker(linter_name: str, options: LintSeqOptions) -> None:
    """Build the linter once per process: pylint's start-up is costly."""
    global _SAMPLER
    from .linters import get_linter

    _SAMPLER = LintSeqSampler(get_linter(linter_name), options)


@dataclass(slots=True)
class _Outcome:
    index: int
    diffs: list[list[str]]
    lint_calls: int = 0
    skip: str | None = None


def _process(program: Program, paths: int, seed: int) -> _Outcome:
    if program.skip is not None:
        return _Outcome(program.index, [], skip=program.skip.value)
    assert _SAMPLER is not None
    try:
        code = unwrap_fences(program.code)
        check_size(code, _SAMPLER.options)
        lines = prepare_program(code)
        result = _Outcome(program.index, [])
        for k in range(paths):
            path = _SAMPLER.sample(lines, path_rng(seed, program.index, k))
            result.diffs.append(path.diffs())
            result.lint_calls += path.lint_calls
        return result
    except ProgramSkipped as exc:
        return _Outcome(program.index, [], skip=exc.reason.value)
    except Exception:  # a linter crash on one program must not stop a run
        return _Outcome(program.index, [], skip=SkipReason.INTERNAL_ERROR.value)


def _process_batch(batch: list[Program], paths: int, seed: int) -> list[_Outcome]:
    return [_process(p, paths, seed) for p in batch]


# -- the run ---------------------------------------------------------------------------


def run_lintseq(
    programs: Iterable[Program],
    output: str | os.PathLike,
    job: LintSeqJob,
    progress: Callable[[int], None] | None = None,
) -> RunSummary:
    """Refactor ``programs`` into LintSeq paths and write them to ``output`` (JSONL).

    ``progress`` is called with the number of programs finished since the last
    call. The output appears only if the whole run succeeds.
    """
    started = time.perf_counter()
    summary = RunSummary()
    if job.num_samples is not None:
        programs = islice(programs, job.num_samples)
    out_path = Path(output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    sources: dict[int, Program] = {}
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:

            def emit(outcomes: list[_Outcome]) -> None:
                for outcome in outcomes:
                    program = sources.pop(outcome.index)
                    summary.programs += 1
                    summary.lint_calls += outcome.lint_calls
                    if outcome.skip:
                        summary.skipped[outcome.skip] += 1
                    for diffs in outcome.diffs:
                        row = {
                            "edit_path": diffs,
                            "index": program.index,
                            "source_file": program.source_file,
                            f"source_{job.prompt_field}": program.instruction,
                            f"source_{job.code_field}": program.code,
                        }
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                        summary.paths += 1
                if progress:
                    progress(len(outcomes))

            batches = _batched(programs, job.batch_size, sources)
            if job.workers <= 1:
                _init_worker(job.linter, job.options)
                for batch in batches:
                    emit(_process_batch(batch, job.paths_per_sample, job.seed))
            else:
                _run_pool(batches, job, emit)
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    summary.seconds = time.perf_counter() - started
    return summary


def _batched(programs: Iterable[Program], size: int, sources: dict[int, Program]) -> Iterator[list[Program]]:
    iterator = iter(programs)
    while batch := list(islice(iterator, size)):
        for program in batch:
            sources[program.index] = program
        yield batch


def _run_pool(batches: Iterator[list[Program]], job: LintSeqJob, emit: Callable[[list[_Outcome]], None]) -> None:
    """Keep at most a few batches per worker in flight; emit results in input order."""
    import multiprocessing

    # Not "fork": the parent may run threads (the progress bar), and forking
    # a threaded process can deadlock.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    in_flight: deque = deque()
    limit = job.workers * 4
    with context.Pool(job.workers, initializer=_init_worker, initargs=(job.linter, job.options)) as pool:
        for batch in batches:
            in_flight.append(pool.apply_async(_process_batch, (batch, job.paths_per_sample, job.seed)))
            while len(in_flight) >= limit:
                emit(in_flight.popleft().get())
        while in_flight:
            emit(in_flight.popleft().get())
