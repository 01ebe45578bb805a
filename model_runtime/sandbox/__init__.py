"""Running tests on code nobody has checked: a throwaway copy, limits, results, the failure report.

Holds :mod:`.runner` (the :class:`~.runner.Sandbox` that does one run, its
limits, and the names front ends import), which drives :mod:`.shadow` (the
shadow copy of the workspace), :mod:`.process` (process supervision under
limits and namespaces), :mod:`.warm` (the warm runner: one sandboxed process
per :class:`~.runner.Sandbox` that forks each run), :mod:`.results` (reading the
results) and :mod:`.errors` (:class:`~.errors.SandboxError`);
:mod:`.pytest_json_plugin` (the self-contained pytest plugin that runs *inside*
the sandbox and writes one JSON line per report), :mod:`.zygote` (the warm
runner's half inside the sandbox, self-contained too) and
:mod:`.failure_report` (the report of what failed and in which function under
test, one schema for the pytest plugin and the language server).

May import: ``edits`` (syntax checks), ``errors``.
"""
