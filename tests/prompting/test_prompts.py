"""Prompt formats round-trip: build a prompt, answer it well, parse the answer back to the same thing."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from model_runtime.edits.diff_apply import apply_edit_sequence
from model_runtime.edits.editpath import format_training_text
from model_runtime.prompting.instruction import InstructionTooLong, build_instruction, estimate_tokens
from model_runtime.lintseq.linters import PyflakesLinter
from model_runtime.lintseq.sampler import LintSeqSampler
from model_runtime.prompting.formats import (
    FORMATS,
    TIMEOUT_FEEDBACK,
    ChatFormat,
    PromptRequest,
    error_feedback,
    failed_test_feedback,
    get_format,
)

EOS = "<|endoftext|>"

PROGRAM = """\
from collections import Counter


def most_common_word(text):
    words = text.lower().split()
    if not words:
        return None
    return Counter(words).most_common(1)[0][0]"""

FAULTY = """\
def mean(xs):
    total = 0
    for x in xs:
        total += x
    return total / len(xs) + 1"""

FIXED = FAULTY.replace("len(xs) + 1", "len(xs)")

FEEDBACK = failed_test_feedback("assert mean([1, 3]) == 2", input="[1, 3]", expected="2", actual="3.0")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
NO_SYSTEM = (
    "{% for m in messages %}{% if m.role == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def unified(old: str, new: str, context: int = 1) -> str:
    lines = difflib.unified_diff(old.split("\n"), new.split("\n"), lineterm="", n=context)
    return "\n".join(list(lines)[2:])


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A real byte-level BPE tokenizer, trained here on our own source, with a chat template."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=[EOS, "<|im_start|>", "<|im_end|>", "<|diff|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    source = Path(__file__).parents[2] / "model_runtime" / "edits" / "editpath.py"
    bpe.train_from_iterator([source.read_text()], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS)
    tok.chat_template = CHATML
    return tok


# --------------------------------------------------------------------------- registry


def test_every_format_is_selectable_by_name():
    assert set(FORMATS) == {"lintseq", "cycle", "cycle-program", "chat"}
    for name in ("lintseq", "cycle", "cycle-program"):
        fmt = get_format(name)
        assert fmt.name == name
        assert fmt.answer in ("diffs", "program")
    with pytest.raises(ValueError, match="unknown prompt format 'fim'.*lintseq"):
        get_format("fim")


# --------------------------------------------------------------------------- lintseq


def test_lintseq_prompt_is_the_public_models_format():
    fmt = get_format("lintseq")
    assert fmt.build(PromptRequest("Write a function `f`.")) == "Write a function `f`.\n<|diff|>"
    assert fmt.stop_sequences == ("\n<|diff|>\n<|diff|>",)
    completion = "@@ -0,0 +1 @@\n+x = 1\n<|diff|>@@ -1,0 +2 @@\n+y = x\n<|diff|>\n<|diff|>" + EOS
    parsed = fmt.parse(completion, eos_token=EOS)
    assert parsed.diffs == ("@@ -0,0 +1 @@\n+x = 1", "@@ -1,0 +2 @@\n+y = x")
    assert parsed.diff_kind == "lintseq" and parsed.skipped == ()
    assert fmt.render_answer(parsed.diffs, EOS) == completion


def test_lintseq_round_trip_with_a_sampled_edit_path():
    fmt = get_format("lintseq")
    instruction = "Write a Python function `most_common_word(text)` to solve the following problem:"
    path = LintSeqSampler(PyflakesLinter()).sample_paths(PROGRAM, 1, seed=7)[0]
    prompt = fmt.build(PromptRequest(instruction))
    answer = fmt.render_answer(path.diffs(), EOS)
    assert prompt + answer == format_training_text(instruction, path.diffs(), EOS)
    parsed = fmt.parse(answer, eos_token=EOS)
    assert parsed.diffs == tuple(path.diffs()) and parsed.skipped == ()
    result = apply_edit_sequence(parsed.diffs, kind=parsed.diff_kind)
    assert result.ok and result.program == PROGRAM


def test_lintseq_refuses_existing_code():
    with pytest.raises(ValueError, match="empty file"):
        get_format("lintseq").build(PromptRequest("fix it", code="x = 1"))


def test_lintseq_skips_malformed_truncated_and_trailing_pieces_with_reasons():
    fmt = get_format("lintseq")
    good, bad, later = "@@ -0,0 +1 @@\n+x = 1", "@@ -1,0 +2,3 @@\n+y = 2", "@@ -1,0 +2 @@\n+z = 3"
    parsed = fmt.parse(f"{good}\n<|diff|>{bad}\n<|diff|>{later}\n<|diff|>\n<|diff|>chatter")
    assert parsed.diffs == (good,)
    assert [s.text for s in parsed.skipped] == [bad, later, "chatter"]
    assert "diff 2: malformed diff" in parsed.skipped[0].reason
    assert "follows a malformed diff" in parsed.skipped[1].reason
    assert "after the end" in parsed.skipped[2].reason

    cut = fmt.parse(f"{good}\n<|diff|>@@ -1,0 +2 @@\n+y = ", truncated=True)
    assert cut.diffs == (good,)
    assert "token limit" in cut.skipped[0].reason

    garbage = fmt.parse("def f(): return 1")
    assert garbage.diffs == () and "no hunk found" in garbage.skipped[0].reason


# --------------------------------------------------------------------------- cycle


def test_cycle_program_prompt_is_the_papers_template():
    prompt = get_format("cycle-program").build(PromptRequest("Compute the mean.", FAULTY, FEEDBACK))
    assert prompt == (
        "Compute the mean.\n"
        "### Bad Solution:\n"
        "\n"
        "# def mean(xs):\n"
        "#     total = 0\n"
        "#     for x in xs:\n"
        "#         total += x\n"
        "#     return total / len(xs) + 1\n"
        "\n"
        "### Execution Failure:\n"
        '# Test Case Failed: assert mean([1, 3]) == 2, Input: "[1, 3]", '
        'Expected output: "2", Actual output: "3.0"\n'
        "\n"
        "### Good solution:\n"
    )


def test_cycle_block_is_indented_like_a_humaneval_completion():
    problem = 'def mean(xs):\n    """Average of xs."""\n'
    body = "    return sum(xs) / len(xs) + 1"
    fmt = get_format("cycle-program")
    prompt = fmt.build(PromptRequest(problem, body, error_feedback("return sum(xs)", "division by zero")))
    assert prompt.endswith(
        "    ### Bad Solution:\n\n    #     return sum(xs) / len(xs) + 1\n\n"
        "    ### Execution Failure:\n    # Failed at line: return sum(xs); Error: division by zero\n\n"
        "    ### Good solution:\n"
    )
    answer = fmt.render_answer("    return sum(xs) / len(xs)", EOS)
    assert fmt.parse(answer, eos_token=EOS).program == "    return sum(xs) / len(xs)"


def test_cycle_program_round_trip_and_refusals():
    fmt = get_format("cycle-program")
    parsed = fmt.parse(fmt.render_answer(FIXED, EOS), eos_token=EOS)
    assert parsed.program == FIXED and parsed.diffs == () and parsed.skipped == ()
    fenced = fmt.parse(f"```python\n{FIXED}\n```\n### Bad Solution:\nmore")
    assert fenced.program == FIXED
    broken = fmt.parse("def mean(xs)\n    return 0")
    assert broken.program is None and "does not parse" in broken.skipped[0].reason
    cut = fmt.parse(FIXED[:30], truncated=True)
    assert cut.program is None and "token limit" in cut.skipped[0].reason
    assert "empty answer" in fmt.parse(EOS, eos_token=EOS).skipped[0].reason


def test_cycle_diff_variant_round_trip_repairs_the_faulty_code():
    fmt = get_format("cycle")
    prompt = fmt.build(PromptRequest("Compute the mean.", FAULTY, TIMEOUT_FEEDBACK))
    assert prompt.endswith(
        "### Execution Failure:\n# timed out\n\n"
        "### Good solution as diffs against the bad solution:\n<|diff|>"
    )
    assert prompt.startswith(get_format("cycle-program").build(
        PromptRequest("Compute the mean.", FAULTY, TIMEOUT_FEEDBACK)).split("### Good solution:")[0])
    middle = FAULTY.replace("total = 0", "total = 0.0")
    diffs = [unified(FAULTY, middle), unified(middle, FIXED.replace("total = 0", "total = 0.0"))]
    parsed = fmt.parse(fmt.render_answer(diffs, EOS), eos_token=EOS)
    assert parsed.diffs == tuple(diffs) and parsed.diff_kind == "unified"
    result = apply_edit_sequence(parsed.diffs, FAULTY, kind=parsed.diff_kind)
    assert result.ok and result.program == FIXED.replace("total = 0", "total = 0.0")


def test_cycle_needs_faulty_code():
    with pytest.raises(ValueError, match="faulty code"):
        get_format("cycle").build(PromptRequest("Compute the mean.", "", FEEDBACK))


def test_feedback_fallback_names_the_line():
    assert failed_test_feedback("assert mean([]) == 0") == (
        "Test Case Failed: Failed at line: assert mean([]) == 0, Error: AssertionError"
    )


# --------------------------------------------------------------------------- chat


def test_chat_prompt_uses_the_models_template(tokenizer):
    fmt = get_format("chat", tokenizer=tokenizer)
    prompt = fmt.build(PromptRequest("Fix `mean`.", FAULTY, FEEDBACK))
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert f"```python\n{FAULTY}\n```" in prompt and FEEDBACK in prompt and "```diff" in prompt
    assert tokenizer(prompt)["input_ids"]  # the real tokenizer reads it


def test_chat_round_trip(tokenizer):
    fmt = get_format("chat", tokenizer=tokenizer)
    diff = unified(FAULTY, FIXED)
    reply = fmt.render_answer([diff], EOS)
    parsed = fmt.parse(reply)  # the tokenizer's EOS is used by default
    assert parsed.diffs == (diff,) and parsed.skipped == ()
    assert apply_edit_sequence(parsed.diffs, FAULTY, kind=parsed.diff_kind).program == FIXED


def test_chat_falls_back_when_the_template_has_no_system_role(tokenizer):
    tok = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, eos_token=EOS)
    tok.chat_template = NO_SYSTEM
    prompt = ChatFormat(tok, system="RULES").build(PromptRequest("Write `f`."))
    assert prompt.startswith("<start_of_turn>user\nRULES\n\nWrite `f`.")
    assert "system" not in prompt and prompt.endswith("<start_of_turn>model\n")


def test_chat_needs_a_chat_template(tokenizer):
    tok = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, eos_token=EOS)
    with pytest.raises(ValueError, match="no chat template"):
        get_format("chat", tokenizer=tok)


def test_chat_reply_parsing_edge_cases(tokenizer):
    fmt = get_format("chat", tokenizer=tokenizer)
    diff = unified(FAULTY, FIXED)
    bare = fmt.parse(f"The fix:\n{diff}\nThis divides correctly now.")
    assert bare.diffs == (diff,)
    two = fmt.parse(f"```diff\n{diff}\n```\nor\n```diff\n{diff}\n```")
    assert two.diffs == (diff,) and "only the first" in two.skipped[0].reason
    open_block = fmt.parse(f"```diff\n{diff}")
    assert open_block.diffs == () and "not closed" in open_block.skipped[0].reason
    prose = fmt.parse("I think the code is fine.\n```python\nprint(1)\n```")
    assert prose.diffs == () and "no diff" in prose.skipped[0].reason
    bad = fmt.parse("```diff\n@@ -5 +5 @@\n-    return total / len(xs) + 1\n```")
    assert bad.diffs == () and "malformed diff" in bad.skipped[0].reason


# --------------------------------------------------------------------------- instructions

MODULE = '''\
import json
import os
from typing import Iterable


def far_away(path):
    return os.path.exists(path)


class Store(dict):
    """A dict persisted to disk."""

    def save(self, path: str, *, indent: int = 2) -> None:
        """Write the store to ``path`` as JSON.

        >>> Store(a=1).save("/tmp/s.json")
        """
        raise NotImplementedError


def load(path) -> "Store":
    return Store(json.load(open(path)))
'''


def test_instruction_has_signature_docstring_and_context():
    inst = build_instruction(MODULE, "Store.save", max_tokens=10_000)
    assert inst.text.startswith(
        "Write a Python method `save(self, path: str, *, indent: int = 2) -> None` of class `Store` "
        "to solve the following problem:\nWrite the store to ``path`` as JSON.\n\n"
        '>>> Store(a=1).save("/tmp/s.json")\n'
    )
    assert inst.text.endswith(
        "```python\nimport json\nimport os\nfrom typing import Iterable\n"
        "def far_away(path): ...\nclass Store(dict): ...\ndef load(path) -> \"Store\": ...\n```"
    )
    assert inst.dropped == () and inst.tokens == estimate_tokens(inst.text)


def test_instruction_drops_the_furthest_context_first(tokenizer):
    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    full = build_instruction(MODULE, "Store.save", max_tokens=10_000, count_tokens=count)
    tight = build_instruction(MODULE, "Store.save", max_tokens=full.tokens - 1, count_tokens=count)
    assert tight.dropped == ("import json",) and tight.tokens <= full.tokens - 1
    head = build_instruction(MODULE, "Store.save", max_tokens=10_000, count_tokens=count).text.split("\n\nContext")[0]
    bare = build_instruction(MODULE, "Store.save", max_tokens=count(head), count_tokens=count)
    assert bare.text == head
    assert bare.dropped == (
        # distances from `save` (line 13): 12, 11, 10, then `load` 9 lines below, `far_away` 7 above
        "import json", "import os", "from typing import Iterable", 'def load(path) -> "Store": ...',
        "def far_away(path): ...", "class Store(dict): ...",
    )


def test_instruction_that_cannot_fit_is_a_clear_error():
    with pytest.raises(InstructionTooLong, match="signature and docstring of `Store.save` need"):
        build_instruction(MODULE, "Store.save", max_tokens=10)


def test_instruction_for_a_missing_function_names_what_exists():
    with pytest.raises(LookupError, match="at this level: far_away, Store, load"):
        build_instruction(MODULE, "nope", max_tokens=100)
    with pytest.raises(LookupError, match="class, not a function"):
        build_instruction(MODULE, "Store", max_tokens=100)


def test_instruction_prompt_feeds_every_format(tokenizer):
    inst = build_instruction(MODULE, "load", max_tokens=10_000)
    assert inst.text.startswith('Write a Python function `load(path) -> "Store"`.')
    assert get_format("lintseq").build(PromptRequest(inst.text)).endswith("\n<|diff|>")
    assert inst.text in get_format("chat", tokenizer=tokenizer).build(PromptRequest(inst.text))
