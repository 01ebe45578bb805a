"""Measuring models: problems with tests, pass@k, one-shot against refine, reports.

Holds :mod:`.problems` (HumanEval-schema problems, running a program against
a problem's tests in the sandbox, the pass@k estimator; the corpus and CYCLE
collection use it too), :mod:`.run` (sampling and refine chains at an equal
sample budget), :mod:`.report` (``summary.json``, results, table, plot) and
:mod:`.repair` (``editseq eval repair``: buggy functions repaired by the refine
loop, against a no-model baseline of single-edit mutations; its own report).

May import: ``refine``, ``prompting``, ``backends``, ``sandbox``, ``edits`` (mutations),
``defaults``, ``errors``, and ``run`` (the run seam, only in :mod:`.repair`: the
benchmark must run exactly the loop ``editseq refine`` runs, with its
``RunConfig`` and sandbox).
"""
