"""The failure report as diagnostics, whatever the report holds: a report is a file anyone can write.

Before: a ``test_line`` of 2^31 or more, a FIFO or a link to ``/dev/zero`` at the report's path
ended the watcher for the session; a report naming ``../../etc/shadow`` published diagnostics there.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from lsp_server.diagnostics import report_diagnostics
from model_runtime.sandbox.failure_report import (
    MAX_REPORT_BYTES,
    FailureReport,
    TestFailure,
    read_report,
    report_path,
    write_report,
)


def _failure(**fields) -> TestFailure:
    base = dict(node_id="tests/test_a.py::test_a", test_path="tests/test_a.py", test_line=3, message="boom",
                target_path="a.py", target_function="f", target_line=2, expected=None, actual=None,
                feedback="")
    return TestFailure(**{**base, **fields})


def test_lines_past_what_lsp_can_say_are_clamped(tmp_path):
    report = FailureReport.new(tmp_path, [_failure(test_line=2**40, target_line=2**31)], [])
    (diagnostic,) = report_diagnostics(report, tmp_path)[Path(tmp_path, "a.py").as_uri()]
    assert diagnostic.range.start.line == 2**31 - 2
    assert diagnostic.related_information[0].location.range.start.line == 2**31 - 2


def test_only_files_inside_the_workspace_get_diagnostics(tmp_path):
    report = FailureReport.new(tmp_path, [
        _failure(node_id="../../etc/shadow::x", test_path="../../etc/shadow"),
        _failure(node_id="tests/test_a.py::test_b", target_path="../../../etc/passwd"),
    ], [])
    published = report_diagnostics(report, tmp_path)
    assert list(published) == [(tmp_path / "tests" / "test_a.py").as_uri()]  # the target fell back to the test


def test_a_fifo_a_device_link_and_an_oversized_file_are_not_read(tmp_path):
    path = report_path(tmp_path)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    box = {}
    reader = threading.Thread(target=lambda: box.update(report=read_report(tmp_path)), daemon=True)
    reader.start()
    reader.join(2)
    assert not reader.is_alive() and box["report"] is None  # no writer needed to come back
    path.unlink()
    path.symlink_to("/dev/zero")
    started = time.monotonic()
    assert read_report(tmp_path) is None and time.monotonic() - started < 1
    path.unlink()
    path.write_bytes(b" " * (MAX_REPORT_BYTES + 1))
    assert read_report(tmp_path) is None
    write_report(tmp_path, FailureReport.new(tmp_path, [_failure()], []))
    assert read_report(tmp_path).failures[0].node_id == "tests/test_a.py::test_a"  # a valid one still reads
