"""interpret_completion: the one place that turns model text into applied steps and refusals."""

from model_runtime.backends.base import Completion
from model_runtime.edits.editpath import DIFF_TOKEN, insertion_diff
from model_runtime.prompting.formats import get_format
from model_runtime.prompting.proposals import interpret_completion

PROGRAM = ["def f(x):", "    y = x + 1", "    return y"]


def completion(text, finish="stop"):
    return Completion(index=0, text=text, new_tokens=10, finish_reason=finish)


def test_lintseq_steps_apply_and_build_the_program():
    first = insertion_diff(PROGRAM[:1] + PROGRAM[2:], [True, True])
    second = insertion_diff(PROGRAM, [False, True, False])
    # the first state "def f(x):\n    return y" parses; y is undefined but that is the linter's business
    text = first + "\n" + DIFF_TOKEN + second + "\n" + DIFF_TOKEN + "\n" + DIFF_TOKEN
    proposal = interpret_completion(get_format("lintseq"), completion(text))
    assert proposal.program == "\n".join(PROGRAM)
    assert proposal.refused == () and len(proposal.steps) == 2 and proposal.changed


def test_refused_step_stops_the_sequence_with_numbered_reasons():
    good = insertion_diff(["x = 1"], [True])
    breaks = "@@ -1,0 +2 @@\n+    y = 2"  # unexpected indent
    later = "@@ -1,0 +2 @@\n+z = 3"
    text = DIFF_TOKEN.join([good + "\n", breaks + "\n", later])
    proposal = interpret_completion(get_format("lintseq"), completion(text))
    assert proposal.program == "x = 1"
    assert [r.step for r in proposal.refused] == [2, 3]
    assert proposal.refused[0].reason.startswith("the result does not parse")
    assert "follows a refused step" in proposal.refused[1].reason


def test_truncated_last_diff_is_not_applied_half_written():
    text = insertion_diff(["x = 1"], [True]) + "\n" + DIFF_TOKEN + "@@ -1,0 +2,2 @@\n+def g():"
    proposal = interpret_completion(get_format("lintseq"), completion(text, finish="length"))
    assert proposal.program == "x = 1"
    assert any("token limit" in r.reason for r in proposal.refused)


def test_copy_back_is_not_a_change():
    faulty = "def f(x):\n    return x - 1"
    fmt = get_format("cycle-program")
    answer = fmt.render_answer(faulty)
    proposal = interpret_completion(fmt, completion(answer), start=faulty)
    assert not proposal.changed and proposal.steps == ()


def test_whole_program_answer_becomes_one_step():
    faulty = "def f(x):\n    return x - 1"
    fixed = "def f(x):\n    return x + 1"
    fmt = get_format("cycle-program")
    proposal = interpret_completion(fmt, completion(fmt.render_answer(fixed)), start=faulty)
    assert proposal.program == fixed and len(proposal.steps) == 1
    assert "-    return x - 1" in proposal.steps[0].diff and "+    return x + 1" in proposal.steps[0].diff


def test_garbage_is_refused_not_raised():
    proposal = interpret_completion(get_format("lintseq"), completion("}}}{{{ not a diff @@ at all"))
    assert proposal.program == "" and proposal.refused and not proposal.changed
