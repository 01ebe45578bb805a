"""editseq's engine: code and models, no LSP.

LintSeq sampling (:mod:`model_runtime.lintseq`), the edit format
(:mod:`model_runtime.editpath`), linters (:mod:`model_runtime.linters`) and
data generation (:mod:`model_runtime.lintseq_data`,
:mod:`model_runtime.repo_corpus`). The language server, the pytest plugin
and the CLI all call into this package; it never imports them.
"""

__version__ = "0.1.0"
