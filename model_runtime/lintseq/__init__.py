"""LintSeq: a program as a sequence of linter-clean insertions, and the data jobs that make them.

Holds :mod:`.sampler` (backward sampling of edit paths), :mod:`.linters`
(pyflakes and pylint behind one interface) and :mod:`.data` (``editseq
lintseq`` over JSONL files: streaming, parallel, atomic).

May import: ``edits``, ``errors``.
"""
