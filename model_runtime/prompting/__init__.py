"""What a model is shown and how its answer is read back.

Holds :mod:`.formats` (the prompt formats: lintseq, cycle, cycle-program, chat;
where each stops and how its answer parses), :mod:`.instruction` (the
instruction for one function, built from the user's file with libcst),
:mod:`.feedback` (a failed run in CYCLE's words) and :mod:`.proposals` (a
completion turned into applied steps and refusals).

May import: ``edits``, ``backends`` (the completion type), ``sandbox`` (run results, for feedback), ``errors``.
"""
