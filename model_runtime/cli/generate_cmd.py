"""``editseq generate``: run a model on one prompt and show its edits as they complete."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model_runtime import defaults

from .arguments import MODEL_HELP, add_backend_arguments


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "generate",
        help="generate edit-by-edit proposals for one prompt",
        description=(
            "Run a model (in-process with transformers, or behind an OpenAI-compatible endpoint such "
            "as vLLM's) on one prompt and print each diff the moment it is complete, then each "
            "candidate's resulting program and any refused steps with their reasons."
        ),
    )
    parser.add_argument("--model", default=defaults.MODEL, help=MODEL_HELP)
    add_backend_arguments(parser)
    parser.add_argument("--format", default="auto", choices=("auto", "lintseq", "cycle", "cycle-program", "chat"),
                        help="prompt format (default: auto, the format the model writes in: read off its "
                             "manifest, tokenizer or served entry); chat goes to /v1/chat/completions over HTTP")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the instruction (problem) text")
    source.add_argument("--prompt-file", type=Path, help="read the instruction from this file")
    parser.add_argument("--code-file", type=Path,
                        help="the code the answer edits: the faulty code for cycle formats (default: none)")
    parser.add_argument("--feedback", default="", help="execution feedback for the cycle formats")
    parser.add_argument("--candidates", "-k", type=int, default=defaults.CANDIDATES,
                        help=f"candidates (default: {defaults.CANDIDATES})")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.MAX_NEW_TOKENS)
    parser.add_argument("--temperature", type=float, default=defaults.TEMPERATURE, help="0 means greedy (default)")
    parser.add_argument("--top-p", type=float, default=defaults.TOP_P)
    parser.add_argument("--seed", type=int, default=None, help="default: none, a fresh sample each run")
    parser.add_argument("--json", action="store_true", help="one JSON event per line")
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"editseq generate: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from model_runtime.backends import CandidateEvent, DoneEvent, EditEvent, GenerationRequest
    from model_runtime.refine.loop import model_profile, prompt_payload
    from model_runtime.errors import EditseqError
    from model_runtime.run.engine import make_backend

    from .arguments import run_config
    from model_runtime.prompting.formats import PromptRequest, get_format
    from model_runtime.prompting.proposals import interpret_completion

    try:
        instruction = args.prompt if args.prompt is not None else args.prompt_file.read_text(encoding="utf-8")
        code = args.code_file.read_text(encoding="utf-8") if args.code_file else ""
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read the prompt or code file: {exc}")
    try:
        request_args = dict(k=args.candidates, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, top_p=args.top_p, seed=args.seed)
        GenerationRequest(prompt="", **request_args)  # validate the numbers before loading anything
    except ValueError as exc:
        print(f"editseq generate: {exc}", file=sys.stderr)
        return 2

    try:
        backend = make_backend(run_config(args))
        backend.load()
        name = model_profile(backend).writes if args.format == "auto" else args.format
        fmt = get_format(name)
        # A chat request is messages: the model's template (in-process) or the server's renders them.
        payload = prompt_payload(fmt, PromptRequest(instruction=instruction, code=code, feedback=args.feedback))
        text, messages = (payload, ()) if isinstance(payload, str) else ("", payload)
        request = GenerationRequest(prompt=text, messages=messages, stop=fmt.stop_sequences, **request_args)
        printer = _JsonPrinter() if args.json else _TextPrinter(args.candidates)
        for event in backend.stream(request):
            if isinstance(event, EditEvent):
                printer.edit(event.candidate, event.step, event.diff)
            elif isinstance(event, CandidateEvent):
                printer.candidate(interpret_completion(fmt, event.completion, code))
            elif isinstance(event, DoneEvent):
                printer.done(event.result)
    except EditseqError as exc:
        return _fail(str(exc))
    except ValueError as exc:  # a prompt format that cannot be built (e.g. no chat template)
        return _fail(str(exc))
    return 0


class _JsonPrinter:
    """One JSON object per line, flushed at once so a reader sees each event as it happens."""

    @staticmethod
    def _emit(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def edit(self, candidate: int, step: int, diff: str) -> None:
        self._emit({"event": "edit", "candidate": candidate, "step": step, "diff": diff})

    def candidate(self, proposal) -> None:
        self._emit({
            "event": "candidate",
            "candidate": proposal.candidate,
            "program": proposal.program,
            "steps": len(proposal.steps),
            "rejected": [{"step": r.step, "reason": r.reason} for r in proposal.refused],
            "finish_reason": proposal.completion.finish_reason,
            "new_tokens": proposal.completion.new_tokens,
        })

    def done(self, result) -> None:
        self._emit({"event": "done", "candidates": len(result.completions),
                    "new_tokens": result.new_tokens, "seconds": round(result.seconds, 3)})


class _TextPrinter:
    """Readable output: each diff as it completes, then each candidate's program."""

    def __init__(self, candidates: int) -> None:
        self.many = candidates > 1

    def _who(self, candidate: int) -> str:
        return f"candidate {candidate}, " if self.many else ""

    def edit(self, candidate: int, step: int, diff: str) -> None:
        print(f"--- {self._who(candidate)}edit {step}\n{diff}", flush=True)

    def candidate(self, proposal) -> None:
        who = f"candidate {proposal.candidate}" if self.many else "result"
        print(f"=== {who}: {len(proposal.steps)} step(s) applied "
              f"({proposal.completion.finish_reason}, {proposal.completion.new_tokens} tokens)")
        print(proposal.program if proposal.program.strip() else "(empty program)")
        for refusal in proposal.refused:
            print(f"  refused step {refusal.step}: {refusal.reason}")
        sys.stdout.flush()

    def done(self, result) -> None:
        print(f"done: {len(result.completions)} candidate(s), {result.new_tokens} new tokens, "
              f"{result.seconds:.2f} s", flush=True)
