"""A repair strategy per model: what ``auto`` picks from the model's profile, and the ``rewrite``
strategy end to end with real tiny models that speak only their own format."""

from __future__ import annotations

import pytest

from model_runtime.backends import ModelProfile, TransformersBackend
from model_runtime.prompting.formats import PromptRequest, get_format
from model_runtime.refine.loop import RefineBudget, RefineTarget, model_profile, refine
from refine_models import chat_model, checksum, rewrite_model, sandbox, write_workspace

DOCSTRING = '"""Limit x to the range from low to high."""'


@pytest.mark.parametrize(("formats", "repair", "writes", "strategy"), [
    (("lintseq", "cycle"), "rank", "lintseq", "rank"),  # the embedded model's manifest
    (("lintseq", "cycle"), None, "lintseq", "generate"),  # trained here with CYCLE
    (("lintseq",), None, "lintseq", "rewrite"),  # the public LintSeq models
    (("chat",), None, "chat", "rewrite"),  # an instruct model
    (("chat", "lintseq"), None, "chat", "rewrite"),
    ((), None, "lintseq", "rewrite"),
])
def test_auto_follows_the_profile(formats, repair, writes, strategy):
    profile = ModelProfile(formats, repair, "test")
    assert (profile.writes, profile.strategy) == (writes, strategy)


def test_a_format_setting_comes_first_and_keeps_the_rest():
    backend = TransformersBackend(str(chat_model()))
    assert model_profile(backend).formats == ("chat", "lintseq")
    assert model_profile(backend, "lintseq").writes == "lintseq"
    assert model_profile(backend, "chat").origin == "tokenizer"  # already first: the profile as it is


def test_a_lintseq_model_without_a_manifest_rewrites_from_the_failure(tmp_path):
    """The public LintSeq models' case: no manifest, a diff token. Round 1 asks in ``lintseq`` with the
    instruction and the failure (no faulty code); the model writes the function again; only the
    function lands (its example call is dropped), with the user's docstring put back."""
    root, path, function, tests = write_workspace(tmp_path, "clamp")
    before = checksum(root)
    result = refine(RefineTarget(root, path, function), tests, TransformersBackend(str(rewrite_model())),
                    sandbox=sandbox(root), budget=RefineBudget(rounds=2))
    assert result.verified and result.rounds == 1
    first = result.trajectory[1]
    assert first.format == "lintseq"
    assert first.prompt == get_format("lintseq").build(PromptRequest(result.instruction, "", first.feedback))
    assert "Test Case Failed" in first.prompt and "return high\n    if x > high" not in first.prompt
    assert DOCSTRING in result.final and "print(" not in result.final
    assert result.step_notes == ["only `clamp` landed: dropped print(...)"]
    assert len(result.diffs) == 1  # one rewrite, one step
    assert checksum(root) == before  # the file changes only through an accepted edit


def test_an_instruct_model_is_asked_in_chat_for_one_diff(tmp_path):
    root, path, function, tests = write_workspace(tmp_path, "clamp")
    result = refine(RefineTarget(root, path, function), tests, TransformersBackend(str(chat_model())),
                    sandbox=sandbox(root), budget=RefineBudget(rounds=2))
    assert result.verified and result.trajectory[1].format == "chat"
    assert "[user]" in result.trajectory[1].prompt and "Current code:" in result.trajectory[1].prompt
    assert DOCSTRING in result.final and "print(" not in result.final
    assert result.step_notes == ["only `clamp` landed: dropped print(...)"]


def test_generate_on_a_lintseq_only_model_is_the_users_choice(tmp_path):
    """An explicit strategy is obeyed: CYCLE prompts go to a model that never saw them (it fails)."""
    root, path, function, tests = write_workspace(tmp_path, "clamp")
    result = refine(RefineTarget(root, path, function), tests, TransformersBackend(str(rewrite_model())),
                    sandbox=sandbox(root), budget=RefineBudget(rounds=1, strategy="generate", max_new_tokens=32))
    assert result.trajectory[1].format == "cycle" and not result.verified


def test_a_ranking_model_behind_a_server_is_asked_for_cycle_diffs(tmp_path):
    """The embedded model's manifest says ``rank``; served over HTTP nothing can score, so ``auto`` asks
    it for the CYCLE diffs it was also trained on (an explicit ``rank`` is refused instead)."""
    from model_runtime.backends import OpenAIBackend, OpenAIConfig
    from model_runtime.backends.openai_server import running_server
    from model_runtime.refine.loop import RefineError

    root, path, function, tests = write_workspace(tmp_path, "clamp")
    with running_server(TransformersBackend("embedded"), model_name="embedded") as server:
        remote = OpenAIBackend(OpenAIConfig(server.base_url, "embedded"))
        assert remote.profile().strategy == "rank"  # the server passes the manifest on
        result = refine(RefineTarget(root, path, function), tests, remote, sandbox=sandbox(root),
                        budget=RefineBudget(rounds=1, max_new_tokens=48))
        assert result.trajectory[1].format == "cycle"
        with pytest.raises(RefineError, match="cannot rank"):
            refine(RefineTarget(root, path, function), tests, remote, sandbox=sandbox(root),
                   budget=RefineBudget(rounds=1, strategy="rank"))
        remote.close()


def test_a_file_with_a_utf8_bom_is_refined_and_keeps_its_bom(tmp_path):
    """Python accepts a BOM at the top of a file; it used to be refused as a syntax error."""
    root, path, function, tests = write_workspace(tmp_path, "clamp")
    (root / path).write_text("\ufeff" + (root / path).read_text(), encoding="utf-8")
    result = refine(RefineTarget(root, path, function), tests, TransformersBackend(str(rewrite_model())),
                    sandbox=sandbox(root), budget=RefineBudget(rounds=1))
    assert result.verified and result.final.startswith("\ufeffdef clamp(")


def test_a_sandbox_where_pytest_cannot_start_is_an_error_not_a_red_test(tmp_path):
    """It read as "best 0/51 passed ... not verified" in the editor."""
    from model_runtime.refine.loop import RefineError

    root, path, function, tests = write_workspace(tmp_path, "clamp")
    (root / "conftest.py").write_text("def pytest_collection_modifyitems(items):\n    raise RuntimeError('broken')\n")
    with pytest.raises(RefineError, match="the tests cannot run in the sandbox: pytest ended with exit status 3"):
        refine(RefineTarget(root, path, function), tests, TransformersBackend(str(rewrite_model())),
               sandbox=sandbox(root), budget=RefineBudget(rounds=1))
