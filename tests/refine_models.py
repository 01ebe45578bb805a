"""Workspaces and real tiny models for the refinement tests, built once per test process.

The "repair" model is trained here, in the tests, to memorise the exact
``cycle`` answers of a few scenarios, so that what it proposes is known in
advance and the loop's behaviour around it can be checked for real:

``clamp`` (two bugs): round 1's prompt is answered with the first fix, round
2's (which shows round 1's program and its new failure) with the second, so
the loop goes red (1/3) to 2/3 to green only if it feeds the best candidate
and its feedback back each round.
``double``: the answer copies the faulty line back unchanged.
``triple``: the answer is a different wrong program (no better than the
original), which greedy decoding repeats in the next round.

The prompts are built with the loop's own :func:`~model_runtime.refine.loop.repair_prompt`
from the feedback of real sandbox runs, exactly as the loop will build them.
``random_model`` is the same tokenizer with untrained weights: greedy
decoding from it rambles on without end-of-text, which makes generation long
enough to cancel.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import tempfile
from pathlib import Path

from model_runtime.prompting.feedback import execution_feedback
from model_runtime.prompting.instruction import build_instruction
from model_runtime.prompting.formats import get_format
from model_runtime.refine.loop import repair_prompt
from model_runtime.refine.target import locate_function
from model_runtime.sandbox.runner import Sandbox, SandboxLimits

#: The tests' sandbox: our interpreter, no third-party pytest plugins (hypothesis and
#: friends cost ~2 s per run here and the tests do not need them).
TEST_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
LIMITS = SandboxLimits(timeout_s=30, cpu_s=30)

CLAMP = '''\
def clamp(x, low, high):
    """Limit x to the range from low to high."""
    if x < low:
        return high
    if x > high:
        return low
    return x
'''
CLAMP_FIXED = '''\
def clamp(x, low, high):
    """Limit x to the range from low to high."""
    if x < low:
        return low
    if x > high:
        return high
    return x
'''
CLAMP_TESTS = '''\
from clamp import clamp


def test_inside():
    assert clamp(5, 0, 10) == 5


def test_below():
    assert clamp(-5, 0, 10) == 0


def test_above():
    assert clamp(50, 0, 10) == 10
'''
DOUBLE = 'def double(x):\n    """Twice x."""\n    return x * 3\n'
DOUBLE_TESTS = "from double import double\n\n\ndef test_double():\n    assert double(4) == 8\n"
TRIPLE = 'def triple(x):\n    """Three times x."""\n    return x * 2\n'
TRIPLE_TESTS = "from triple import triple\n\n\ndef test_triple():\n    assert triple(4) == 12\n"

SCENARIOS = {
    "clamp": ({"clamp.py": CLAMP, "tests/test_clamp.py": CLAMP_TESTS}, "clamp.py", "clamp"),
    "double": ({"double.py": DOUBLE, "tests/test_double.py": DOUBLE_TESTS}, "double.py", "double"),
    "triple": ({"triple.py": TRIPLE, "tests/test_triple.py": TRIPLE_TESTS}, "triple.py", "triple"),
}

FIX_BELOW = "--- a\n+++ b\n@@ -3,2 +3,2 @@\n     if x < low:\n-        return high\n+        return low"
FIX_ABOVE = "--- a\n+++ b\n@@ -5,2 +5,2 @@\n     if x > high:\n-        return low\n+        return high"
COPY_BACK = "--- a\n+++ b\n@@ -3,1 +3,1 @@\n-    return x * 3\n+    return x * 3"
WRONG = "--- a\n+++ b\n@@ -3,1 +3,1 @@\n-    return x * 2\n+    return x * 4"


def write_workspace(root: Path, name: str) -> tuple[Path, str, str, list[str]]:
    """A scenario's workspace under ``root``: (root, file, function, test ids)."""
    files, path, function = SCENARIOS[name]
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root, path, function, [f"tests/test_{name}.py"]


def sandbox(root: Path, **limits) -> Sandbox:
    settings = {"timeout_s": LIMITS.timeout_s, "cpu_s": LIMITS.cpu_s, **limits}
    return Sandbox(root, python=sys.executable, limits=SandboxLimits(**settings), env=TEST_ENV)


def checksum(root: Path) -> str:
    """Every file's relative path and bytes, hashed: equal means byte-identical."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _prompt_after(root: Path, path: str, function: str, tests: list[str], code: str) -> str:
    """The repair prompt the loop builds for ``code`` (the dedented function) in this workspace."""
    source = (root / path).read_text()
    target = locate_function(source, function, path)
    result = sandbox(root).run(tests, {path: target.splice(code)})
    instruction = build_instruction(source, function, max_tokens=512).text
    return repair_prompt(instruction, code, execution_feedback(result))


def _examples(scratch: Path) -> list[tuple[str, str]]:
    fmt = get_format("cycle")
    examples = []
    for name, answers in (("clamp", [FIX_BELOW, FIX_ABOVE]), ("double", [COPY_BACK]), ("triple", [WRONG])):
        root, path, function, tests = write_workspace(scratch / name, name)
        code = locate_function((root / path).read_text(), function, path).code
        for diff in answers:
            examples.append((_prompt_after(root, path, function, tests, code), fmt.render_answer([diff])))
            code = _apply(code, diff)
    return examples


def _apply(code: str, diff: str) -> str:
    from model_runtime.edits.diff_apply import apply_diff

    step = apply_diff(code, diff)
    assert step.applied, step.reason
    return step.new


@functools.cache
def repair_model() -> Path:
    """The memorising model's folder (trained on first use, ~10-20 s on one core)."""
    from model_runtime.training.tiny_model import MemoriseSettings, train_memorised_model

    folder = Path(tempfile.mkdtemp(prefix="editseq-repair-model-"))
    report = train_memorised_model(folder / "model", _examples(folder), MemoriseSettings(steps=200),
                                   formats=("lintseq", "cycle"))
    assert report.final_loss < 0.05, report
    return report.folder


@functools.cache
def random_model() -> Path:
    """Untrained weights with the repair model's tokenizer: a real model that never stops talking."""
    from transformers import AutoTokenizer

    from model_runtime.training.tiny_model import build_model, save_model

    tokenizer = AutoTokenizer.from_pretrained(repair_model())
    folder = Path(tempfile.mkdtemp(prefix="editseq-random-model-")) / "model"
    model = build_model(tokenizer, "tiny", seed=1)
    # Random weights would still end a sequence now and then (end-of-text has a
    # 1-in-vocabulary chance per token); forbid the tokens that end one, so only
    # a budget, a cancel or max_new_tokens can stop it and timing tests are exact.
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|diff|>")]
    return save_model(model, tokenizer, folder)


# -- models that speak only their own format (the profile picks ``rewrite`` for them) -----------------

#: A chat template of plain text markers (no special tokens, so every server renders and reads it alike).
CHAT_TEMPLATE = ("{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}\n\n{% endfor %}"
                 "{% if add_generation_prompt %}### assistant:\n{% endif %}")
#: The fixed clamp as a LintSeq model writes it: no docstring (the instruction had it), and a usage
#: example after it that must not land in the file.
CLAMP_REWRITE = (
    "@@ -0,0 +1,6 @@\n+def clamp(x, low, high):\n+    if x < low:\n+        return low\n"
    "+    if x > high:\n+        return high\n+    return x",
    "@@ -6,0 +7,2 @@\n+\n+print(clamp(5, 0, 10))",
)
#: Both clamp fixes in one diff, as a chat model answers, with an example call it was not asked for.
CLAMP_CHAT_DIFF = (
    "--- a\n+++ b\n@@ -3,5 +3,8 @@\n     if x < low:\n-        return high\n+        return low\n"
    "     if x > high:\n-        return low\n+        return high\n     return x\n+\n+\n+print(clamp(50, 0, 10))"
)


def _clamp_context(scratch: Path) -> tuple[str, str, str]:
    """The clamp scenario's instruction, faulty code and round-0 feedback, from a real sandbox run."""
    root, path, function, tests = write_workspace(scratch / "clamp", "clamp")
    source = (root / path).read_text()
    target = locate_function(source, function, path)
    result = sandbox(root).run(tests, {path: source})
    instruction = build_instruction(source, function, max_tokens=512).text
    return instruction, target.code, execution_feedback(result)


def render_chat_template(messages) -> str:
    """:data:`CHAT_TEMPLATE` rendered as transformers renders it (the prompt the chat model memorises)."""
    import jinja2

    turns = [{"role": role, "content": content} for role, content in messages]
    return jinja2.Template(CHAT_TEMPLATE, keep_trailing_newline=True).render(
        messages=turns, add_generation_prompt=True)


@functools.cache
def rewrite_model() -> Path:
    """A LintSeq model with no manifest (profiled ``lintseq`` from its tokenizer, so ``rewrite``) that
    answers clamp's rewrite prompt with the fixed function and an example call."""
    from model_runtime.prompting.formats import PromptRequest
    from model_runtime.training.tiny_model import MemoriseSettings, train_memorised_model

    folder = Path(tempfile.mkdtemp(prefix="editseq-rewrite-model-"))
    instruction, _, feedback = _clamp_context(folder)
    fmt = get_format("lintseq")
    examples = [(fmt.build(PromptRequest(instruction, "", feedback)), fmt.render_answer(list(CLAMP_REWRITE)))]
    report = train_memorised_model(folder / "model", examples, MemoriseSettings(steps=150))
    assert report.final_loss < 0.05, report
    return report.folder


@functools.cache
def chat_model() -> Path:
    """An instruct model (a chat template, no ``<|diff|>`` token) that answers clamp's chat repair prompt
    with one fenced diff fixing both bugs (and adding an example call)."""
    from transformers import AutoTokenizer

    from model_runtime.prompting.formats import ChatFormat, PromptRequest
    from model_runtime.training.tiny_model import MemoriseSettings, save_model, train_memorised_model

    folder = Path(tempfile.mkdtemp(prefix="editseq-chat-model-"))
    instruction, code, feedback = _clamp_context(folder)
    fmt = ChatFormat()
    prompt = render_chat_template(fmt.chat(PromptRequest(instruction, code, feedback)))
    examples = [(prompt, fmt.render_answer([CLAMP_CHAT_DIFF]))]
    report = train_memorised_model(folder / "model", examples, MemoriseSettings(steps=150))
    assert report.final_loss < 0.05, report
    # An instruct model's tokenizer: the chat template, and no edit separator in its vocabulary's use.
    from transformers import AutoModelForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(report.folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    save_model(AutoModelForCausalLM.from_pretrained(report.folder), tokenizer, report.folder)
    return report.folder
