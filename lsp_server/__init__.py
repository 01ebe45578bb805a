"""editseq's language server: the protocol layer only.

Handlers, settings, progress and diagnostics live here and call
:mod:`model_runtime` for every piece of real work; no algorithm belongs in
this package. The server itself arrives with the language-server issue.
"""
