"""`editseq generate` with a real tiny model: streamed edits, candidates, clear failures."""

import json
import subprocess
import sys

import pytest

from model_runtime.cli import main
from model_runtime.edits.diff_apply import apply_edit_sequence


def run_json(capsys, *args):
    code = main(["generate", *args, "--json"])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines()], out.err


def test_json_events_stream_edits_then_candidates_then_done(tiny_lintseq_model, capsys):
    prompt = tiny_lintseq_model.sample_prompts[0]
    instruction = prompt.rsplit("\n<|diff|>", 1)[0]
    code, events, _ = run_json(capsys, "--model", str(tiny_lintseq_model.folder), "--prompt", instruction,
                               "--candidates", "3", "--temperature", "0.7", "--seed", "3",
                               "--max-new-tokens", "96")
    assert code == 0
    assert events[-1]["event"] == "done" and events[-1]["candidates"] == 3
    assert events[-1]["new_tokens"] > 0 and events[-1]["seconds"] > 0
    candidates = {e["candidate"]: e for e in events if e["event"] == "candidate"}
    assert sorted(candidates) == [0, 1, 2]
    edits = [e for e in events if e["event"] == "edit"]
    assert edits, "a model trained on LintSeq paths writes diffs"
    for e in edits:
        # every edit of a candidate comes before that candidate's summary
        assert events.index(e) < events.index(candidates[e["candidate"]])
    for index, summary in candidates.items():
        diffs = [e["diff"] for e in edits if e["candidate"] == index]
        assert [e["step"] for e in edits if e["candidate"] == index] == list(range(1, len(diffs) + 1))
        # the program is exactly what the streamed diffs build, up to the first refused step
        assert summary["program"] == apply_edit_sequence(diffs).program
        assert summary["steps"] + len(summary["rejected"]) >= min(summary["steps"] + 1, len(diffs))
        for rejection in summary["rejected"]:
            assert rejection["reason"] and rejection["step"] >= 1


def test_greedy_is_repeatable_and_readable_output(tiny_lintseq_model, capsys):
    args = ["generate", "--model", str(tiny_lintseq_model.folder), "--prompt", "Write a Python function `add(a, b)`.",
            "--max-new-tokens", "48"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "=== result:" in first and "done: 1 candidate(s)" in first
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("done:")]
    assert strip(first) == strip(second)


def test_cycle_format_with_faulty_code(tiny_lintseq_model, tmp_path, capsys):
    faulty = tmp_path / "faulty.py"
    faulty.write_text("def inc(x):\n    return x - 1\n")
    code, events, _ = run_json(capsys, "--model", str(tiny_lintseq_model.folder), "--format", "cycle",
                               "--prompt", "Write inc(x) returning x + 1.", "--code-file", str(faulty),
                               "--feedback", "Test Case Failed: assert inc(1) == 2", "--max-new-tokens", "48")
    assert code == 0
    (candidate,) = [e for e in events if e["event"] == "candidate"]
    # whatever the weak model wrote, the program is the faulty code or a parsable edit of it
    compile(candidate["program"], "<candidate>", "exec")


def test_chat_format_without_template_is_a_clear_error(tiny_lintseq_model, capsys):
    code = main(["generate", "--model", str(tiny_lintseq_model.folder), "--prompt", "x", "--format", "chat"])
    assert code == 1
    assert "no chat template" in capsys.readouterr().err


def test_model_without_diff_token(tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.train_from_iterator(["def f(x):\n    return x\n"] * 20,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    code = main(["generate", "--model", str(tmp_path), "--prompt", "x"])
    assert code == 1
    assert "<|diff|>" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--model", "/nonexistent/model-folder", "--prompt", "x"], 1, "does not exist"),
        (["--model", "lsp", "--backend", "openai", "--endpoint", "http://127.0.0.1:9/v1", "--prompt", "x"], 1,
         "cannot connect"),
        (["--model", "m", "--prompt", "x", "--candidates", "0"], 2, "k must be from 1 to"),
        (["--model", "m", "--prompt-file", "/nonexistent/prompt.txt"], 1, "cannot read"),
    ],
)
def test_failures_are_clear(args, code, message, capsys):
    assert main(["generate", *args]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_real_process(tiny_lintseq_model):
    proc = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "generate", "--model", str(tiny_lintseq_model.folder),
         "--prompt", "Write a Python function `f(x)`.", "--json", "--max-new-tokens", "32"],
        capture_output=True, text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["event"] == "done"
