"""The in-process transformers backend, driven by the real trained tiny model."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time

import pytest

from model_runtime.backends import (
    CandidateEvent,
    DoneEvent,
    EditEvent,
    GenerationRequest,
    MissingDiffToken,
    ModelLoadError,
    TextEvent,
    TransformersBackend,
    TransformersConfig,
)
from model_runtime.backends.streaming import CandidateTracker, DiffSplitter
from model_runtime.edits.editpath import DIFF_TOKEN, split_edits


@pytest.fixture(scope="module")
def backend(tiny_lintseq_model):
    backend = TransformersBackend(TransformersConfig(str(tiny_lintseq_model.folder), device="auto"))
    backend.load()
    return backend


@pytest.fixture(scope="module")
def prompt(tiny_lintseq_model):
    return tiny_lintseq_model.sample_prompts[0]


def long_request(prompt: str, **kwargs) -> GenerationRequest:
    """Sampling hot enough that the model rarely ends the text: generation runs for seconds."""
    return GenerationRequest(prompt, k=4, max_new_tokens=900, temperature=3.0, seed=5, **kwargs)


def test_importing_backends_does_not_import_torch_or_httpx():
    code = (
        "import sys, model_runtime.backends as b; b.GenerationRequest('x');"
        "assert not {'torch', 'transformers', 'httpx'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_diff_splitter_cuts_diffs_as_they_close_and_applies_stop_strings():
    splitter = DiffSplitter(stop=["STOP"])
    assert splitter.feed("@@ -0,0 +1 @@\n+a\n<|di") == []
    assert splitter.feed("ff|>@@ -1,0 +2 @@\n") == ["@@ -0,0 +1 @@\n+a"]
    assert splitter.feed("+b\n" + DIFF_TOKEN + "\n" + DIFF_TOKEN) == ["@@ -1,0 +2 @@\n+b"]
    assert splitter.feed("@@ -2,0 +3 @@\n+cST") == []
    assert splitter.feed("OP and more") == ["@@ -2,0 +3 @@\n+c"]
    assert splitter.stopped and "STOP" not in splitter.text and splitter.feed("x") == []
    assert split_edits(splitter.text) == ["@@ -0,0 +1 @@\n+a", "@@ -1,0 +2 @@\n+b", "@@ -2,0 +3 @@\n+c"]


def test_text_that_may_start_a_stop_string_is_held_back():
    events = []
    tracker = CandidateTracker(0, stop=("<|diff|>\n<|diff|>",), emit=events.append, text_deltas=True)
    tracker.add("@@ -0,0 +1 @@\n+a\n<|di")
    assert "".join(e.text for e in events if isinstance(e, TextEvent)) == "@@ -0,0 +1 @@\n+a\n"
    tracker.add("ff|>\n<|diff|>more")
    assert tracker.done and tracker.completion.text == "@@ -0,0 +1 @@\n+a\n"
    assert "".join(e.text for e in events if isinstance(e, TextEvent)) == tracker.completion.text
    assert [e.diff for e in events if isinstance(e, EditEvent)] == ["@@ -0,0 +1 @@\n+a"]


def test_greedy_generation_is_a_well_formed_edit_sequence(backend, prompt):
    result = backend.generate(GenerationRequest(prompt, max_new_tokens=200))
    (completion,) = result.completions
    assert completion.finish_reason == "stop" and 0 < completion.new_tokens < 200
    assert result.prompt_tokens > 10 and result.seconds > 0
    assert completion.edits and DIFF_TOKEN in completion.text
    assert all(edit.startswith("@@ -") for edit in completion.edits)


def test_stream_yields_each_diff_before_generation_ends_and_matches_generate(backend, tiny_lintseq_model):
    early = 0
    for prompt in tiny_lintseq_model.sample_prompts:
        request = GenerationRequest(prompt, max_new_tokens=200)
        expected = backend.generate(request).completions[0]
        events = list(backend.stream(request, text_deltas=True))
        edits = [e for e in events if isinstance(e, EditEvent)]
        assert [e.diff for e in edits] == expected.edits
        assert [e.step for e in edits] == list(range(1, len(edits) + 1))
        assert {e.candidate for e in edits} <= {0}
        assert "".join(e.text for e in events if isinstance(e, TextEvent)) == expected.text
        assert isinstance(events[-1], DoneEvent) and events[-1].result.completions == (expected,)
        assert isinstance(events[-2], CandidateEvent) and events[-2].completion == expected
        if edits:
            # Text kept coming after the first diff was handed out: it was streamed mid-generation.
            first = events.index(edits[0])
            early += any(isinstance(e, TextEvent) for e in events[first + 1 :])
    assert early >= 1


def test_k_sampled_candidates_in_one_call_are_seeded(backend, prompt):
    request = GenerationRequest(prompt, k=4, max_new_tokens=120, temperature=1.0, top_p=0.95, seed=11)
    result = backend.generate(request)
    assert [c.index for c in result.completions] == [0, 1, 2, 3]
    assert len({c.text for c in result.completions}) >= 2
    assert all(c.finish_reason in ("stop", "length") for c in result.completions)
    assert backend.generate(request).completions == result.completions
    streamed = list(backend.stream(request))
    assert streamed[-1].result.completions == result.completions
    for completion in result.completions:
        diffs = [e.diff for e in streamed if isinstance(e, EditEvent) and e.candidate == completion.index]
        assert diffs == completion.edits


def test_greedy_k_candidates_are_copies(backend, prompt):
    one = backend.generate(GenerationRequest(prompt, max_new_tokens=120)).completions[0]
    three = backend.generate(GenerationRequest(prompt, k=3, max_new_tokens=120)).completions
    assert [c.index for c in three] == [0, 1, 2]
    assert {(c.text, c.new_tokens, c.finish_reason) for c in three} == {
        (one.text, one.new_tokens, one.finish_reason)
    }


def test_stop_strings_end_the_candidate_and_are_cut(backend, prompt):
    full = backend.generate(GenerationRequest(prompt, max_new_tokens=200)).completions[0]
    stopped = backend.generate(GenerationRequest(prompt, max_new_tokens=200, stop=("\n+",))).completions[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full.text[: full.text.index("\n+")]
    assert stopped.new_tokens < full.new_tokens


def test_cancellation_stops_generation_within_a_bounded_time(backend, prompt):
    cancel = threading.Event()
    events = backend.stream(long_request(prompt), cancel, text_deltas=True)
    next(e for e in events if isinstance(e, TextEvent))
    cancel.set()
    started = time.perf_counter()
    rest = list(events)
    assert time.perf_counter() - started < 2.0
    result = rest[-1].result
    assert result.cancelled and all(c.finish_reason == "cancelled" for c in result.completions)
    assert max(c.new_tokens for c in result.completions) < 100


def test_cancel_from_another_thread_and_abandoned_streams(backend, prompt):
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.perf_counter()
    result = backend.generate(long_request(prompt), cancel)
    assert result.cancelled and time.perf_counter() - started < 3.0
    # Leaving a stream early cancels it too, and frees the model for the next request.
    events = backend.stream(long_request(prompt))
    next(events)
    events.close()
    assert not backend.loaded.lock.locked()
    already = threading.Event()
    already.set()
    result = backend.generate(long_request(prompt), already)
    assert result.cancelled and all(c.new_tokens <= 1 for c in result.completions)


def test_one_model_instance_shared_by_concurrent_callers(backend, tiny_lintseq_model):
    other = TransformersBackend(str(tiny_lintseq_model.folder))
    other.load()
    assert other.loaded is backend.loaded
    prompts = tiny_lintseq_model.sample_prompts[:3]
    expected = [backend.generate(GenerationRequest(p, max_new_tokens=100)).completions for p in prompts]
    results = [None] * len(prompts)

    def work(i: int) -> None:
        results[i] = other.generate(GenerationRequest(prompts[i], max_new_tokens=100)).completions

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


def test_a_model_with_neither_the_diff_token_nor_a_chat_template_is_refused_by_name(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.train_from_iterator(["def f(x):\n    return x\n"], trainers.BpeTrainer(special_tokens=["</s>"]))
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="</s>").save_pretrained(tmp_path)
    with pytest.raises(MissingDiffToken, match=str(tmp_path)):
        TransformersBackend(TransformersConfig(str(tmp_path), local_files_only=True)).load()


def test_pickled_weights_load_like_safetensors(tiny_lintseq_model, tmp_path):
    """The public LintSeq models ship a pickled ``pytorch_model.bin``: the floors (torch >= 2.6) load it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import torch

    folder = str(tiny_lintseq_model.folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.config.save_pretrained(tmp_path)
    model.generation_config.save_pretrained(tmp_path)
    # What the public checkpoints hold (transformers 5 saves safetensors only, whatever it is asked).
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    AutoTokenizer.from_pretrained(folder).save_pretrained(tmp_path)
    assert (tmp_path / "pytorch_model.bin").is_file() and not list(tmp_path.glob("*.safetensors"))
    request = GenerationRequest(tiny_lintseq_model.sample_prompts[0], max_new_tokens=40)
    pickled = TransformersBackend(TransformersConfig(str(tmp_path), local_files_only=True))
    assert pickled.generate(request).completions == TransformersBackend(folder).generate(request).completions


def test_the_profile_comes_from_the_manifest_else_the_tokenizer(tiny_lintseq_model, tmp_path):
    """No manifest and a diff token: a LintSeq model, which writes and gets ``rewrite`` repairs (as the
    public models do); a manifest says more; a chat template makes an instruct model."""
    import shutil

    from model_runtime.backends.embedded import write_manifest

    folder = tmp_path / "model"
    shutil.copytree(tiny_lintseq_model.folder, folder)
    profile = TransformersBackend(str(folder)).profile()
    assert (profile.formats, profile.writes, profile.strategy, profile.origin) == (
        ("lintseq",), "lintseq", "rewrite", "tokenizer")
    write_manifest(folder, ["lintseq", "cycle"])
    profile = TransformersBackend(str(folder)).profile()
    assert (profile.formats, profile.strategy, profile.origin) == (("lintseq", "cycle"), "generate", "manifest")


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="no-such-model"):
        TransformersBackend(TransformersConfig(str(tmp_path / "no-such-model"), local_files_only=True)).load()
    with pytest.raises(ModelLoadError, match="dtype"):
        TransformersBackend(TransformersConfig(str(tmp_path), dtype="float8")).load()


def test_requests_are_validated():
    for bad in ({"k": 0}, {"max_new_tokens": 0}, {"temperature": -1.0}, {"top_p": 0.0}):
        with pytest.raises(ValueError):
            GenerationRequest("x", **bad)
    assert GenerationRequest("x", stop="END").stop == ("END",)


def test_make_backend_reads_settings_the_same_way_everywhere():
    from model_runtime.backends import OpenAIBackend, TransformersBackend, make_backend

    local = make_backend("transformers", "/some/folder", device="cpu")
    assert isinstance(local, TransformersBackend)
    remote = make_backend("openai", "lsp", endpoint="http://127.0.0.1:9/v1")
    assert isinstance(remote, OpenAIBackend)
    with pytest.raises(ValueError, match="unknown backend 'vllm'"):
        make_backend("vllm", "m")


def test_generation_stays_inside_the_models_context_without_transformers_warning(backend, prompt, caplog):
    """Every run printed transformers' "will exceed the model's predefined maximum length" warning:
    the budget now stops where the context ends, and a prompt that fills it keeps its tail."""
    import logging

    from transformers.utils import logging as hf_logging

    context = backend.loaded.model.config.max_position_embeddings  # 1024 for the tiny model
    caplog.set_level(logging.WARNING)
    hf_logging.enable_propagation()  # transformers' own handler would hide the warning from caplog
    request = functools.partial(GenerationRequest, temperature=3.0, seed=5, max_new_tokens=context)
    try:
        _generate_past_the_context(backend, prompt, context, request, caplog)
    finally:
        hf_logging.disable_propagation()


def _generate_past_the_context(backend, prompt, context, request, caplog):
    result = backend.generate(request(prompt))  # hot: it rarely stops before the budget
    assert result.prompt_tokens + result.completions[0].new_tokens <= context
    assert "predefined maximum length" not in caplog.text
    huge = prompt + "# filler line\n" * context  # longer than the whole context on its own
    result = backend.generate(request(huge))
    assert result.prompt_tokens < context and result.completions[0].new_tokens >= 1
    assert "leaves no room in the model's 1024-token context" in caplog.text
    assert "predefined maximum length" not in caplog.text


def test_streamed_diffs_and_text_equal_the_whole_texts_however_it_is_cut():
    """The splitter scans only the new chunk and a short tail: whatever the chunking, it gives exactly
    ``split_edits`` of the whole text, cut at the first stop string, and the text deltas add up to it."""
    import random

    rng = random.Random(0)
    pieces = ["@@ -0,0 +1 @@\n", "+a\n", "+b = 1\n", DIFF_TOKEN, "\n", "<|di", "ff|>", "STOP", "ST", "OP", "x",
              "<|diff|>\n<|diff|>"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        stop = rng.choice([(), ("STOP",), ("<|diff|>\n<|diff|>",), ("STOP", "x\n")])
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 6))))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        found = [i for i in (text.find(s) for s in stop) if i >= 0]
        want = text[:min(found)] if found else text
        events = []
        tracker = CandidateTracker(0, stop, events.append, text_deltas=True)
        for chunk in chunks:
            tracker.add(chunk)
        assert tracker.finish("length").text == want, (chunks, stop)
        assert "".join(e.text for e in events if isinstance(e, TextEvent)) == want
        assert [e.diff for e in events if isinstance(e, EditEvent)] == split_edits(want), (chunks, stop)


def test_incremental_decoding_equals_decoding_the_whole_sequence():
    """Tokens decoded one at a time (tokenizers' DecodeStream where it exists), held-back partial
    characters included, give exactly the text of decoding them all at once, on any token sequence."""
    import random

    from transformers import AutoTokenizer

    from model_runtime.backends._hf_hooks import IncrementalDecoder
    from model_runtime.backends.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    rng = random.Random(0)
    texts = ["def f(x):\n    return 'café ✓ 日本語 🎉'\n", "<|diff|>@@ -0,0 +1 @@\n+x = '€'\n"]
    sequences = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    sequences += [[rng.randrange(len(tokenizer)) for _ in range(rng.randint(1, 30))] for _ in range(200)]
    for ids in sequences:
        decoder = IncrementalDecoder(tokenizer)
        text = "".join(decoder.push(token) for token in ids) + decoder.flush()
        assert text == tokenizer.backend_tokenizer.decode(ids, skip_special_tokens=False), ids
