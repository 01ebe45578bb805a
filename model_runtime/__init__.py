"""editseq's engine: code and models, no LSP.

Packages by pipeline stage, lowest first (each package's docstring says what
it holds and which packages it may import; imports only go down this list):

* :mod:`.edits`: the LintSeq diff format, applying diffs, editor edits, the code map.
* :mod:`.lintseq`: linter-clean insertion edit paths, and the jobs that make them.
* :mod:`.backends`: generation behind one interface (in-process transformers, OpenAI-compatible HTTP).
* :mod:`.sandbox`: running tests in a throwaway copy under limits; the failure report.
* :mod:`.prompting`: prompt formats, instructions, execution feedback, proposals.
* :mod:`.refine`: the CYCLE loop (propose, test, show the failure, repeat) and writing a function.
* :mod:`.run`: the seam every front end calls: one run configuration, backend, sandbox, verified writes.
* :mod:`.evaluation`, :mod:`.corpus`, :mod:`.training`: measuring models, the offline corpus, training.
* Front ends: :mod:`.cli` (``editseq``) and :mod:`.pytest_plugin`; the language
  server is the top-level package ``lsp_server``. All three go through :mod:`.run`.

Two modules anyone may import: :mod:`.defaults` (sampling, budget and backend
defaults, defined once) and :mod:`.errors` (:class:`~.errors.EditseqError`, the
base of every error a user sees). The engine never imports a front end.
"""

__version__ = "0.1.0"
