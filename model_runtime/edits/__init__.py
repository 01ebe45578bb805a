"""The edit format and everything that moves text: LintSeq diffs, applying them, editor edits.

Holds :mod:`.editpath` (zero-context unified diffs joined by ``<|diff|>``),
:mod:`.diff_apply` (a model's diff applied exactly, within a stated tolerance,
or refused; LSP positions and text edits), :mod:`.step_edits` (a run's steps
as the text after each step, for an editor), :mod:`.repair_diffs` (the diff
steps that turn faulty code into good code, the ``cycle`` answer) and
:mod:`.code_map` (which function a cursor is in) and :mod:`.mutations` (single-edit
synthetic bugs, by the kinds real bugs come in).

May import: ``errors`` (and libcst, unidiff). The bottom of the engine: every other package may import it.
"""
