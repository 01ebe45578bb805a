"""Training throughput: packed blocks against padded per-document batches, tokens/s and MFU.

Pretraining packs the corpus into full blocks (``model_runtime.training.pretraining``)
instead of padding each document to the longest in its batch. This measures
why, side by side in one run on the same model, data and device: useful
(non-padding) tokens trained per second in each layout, their ratio, and MFU
where the device's peak is known (``model_runtime.training.throughput``). Each layout
runs the same number of optimizer steps (AdamW, bf16 autocast on a GPU that
has it), after warm-up steps that are not timed.

    python benchmarks/training_throughput.py                       # size small, this machine
    python benchmarks/training_throughput.py --size base --device cuda --batch 64 --block 1024

The data is standard-library source (a fixed sample), with a BPE trained on it.
Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_runtime.training.throughput import device_peak_tflops, flops_per_token  # noqa: E402
from model_runtime.training.tiny_model import build_model, stdlib_sample, train_tokenizer  # noqa: E402


def _documents(tokenizer, files: int, block: int) -> list[list[int]]:
    """Token ids of each top-level chunk of the files (split at two blank lines), cut at ``block``.

    Definitions vary in length the way SFT examples and small files do,
    which is what padding pays for.
    """
    docs = []
    for path in stdlib_sample(files, seed=1):
        for chunk in path.read_text(encoding="utf-8", errors="replace").split("\n\n\n"):
            if chunk.strip():
                ids = tokenizer(chunk, add_special_tokens=False)["input_ids"][: block - 1]
                docs.append([*ids, tokenizer.eos_token_id])
    return docs


def _packed_batches(docs: list[list[int]], batch: int, block: int):
    stream = [t for doc in docs for t in doc]
    blocks = [stream[i : i + block] for i in range(0, len(stream) - block + 1, block)]
    for i in range(0, len(blocks) - batch + 1, batch):
        yield blocks[i : i + batch], None


def _padded_batches(docs: list[list[int]], batch: int, block: int):
    for i in range(0, len(docs) - batch + 1, batch):
        yield docs[i : i + batch], max(len(d) for d in docs[i : i + batch])


def _run(model, batches, steps: int, warmup: int, device, pad_id: int, autocast: bool) -> tuple[int, float]:
    """Useful tokens and seconds over ``steps`` timed steps."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    useful, seconds = 0, 0.0
    batches = iter(batches)
    for step in range(warmup + steps):
        rows, width = next(batches)
        width = width or len(rows[0])
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            seconds += time.perf_counter() - start
            useful += int(mask.sum())
    return useful, seconds


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", help="model size (tiny, mini, small, base; default small)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--files", type=int, default=120, help="standard-library files used as data")
    parser.add_argument("--vocab", type=int, default=4096)
    args = parser.parse_args()
    device = torch.device(args.device)
    autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    tokenizer = train_tokenizer(stdlib_sample(args.files, seed=1), args.vocab)
    docs = _documents(tokenizer, args.files, args.block)
    peak = device_peak_tflops() if device.type == "cuda" else None
    print(f"{args.size} model, batch {args.batch} x block {args.block}, {len(docs)} documents, device "
          f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}"
          f"{', bf16 autocast' if autocast else ', fp32'}, {args.steps} timed steps each")
    results = {}
    for layout, batches in (("packed", _packed_batches(docs, args.batch, args.block)),
                            ("padded", _padded_batches(docs, args.batch, args.block))):
        torch.manual_seed(0)
        model = build_model(tokenizer, args.size).to(device).train()
        useful, seconds = _run(model, batches, args.steps, args.warmup, device, tokenizer.pad_token_id, autocast)
        rate = useful / seconds
        mfu = rate * flops_per_token(model, args.block) / (peak * 1e12) if peak else None
        results[layout] = rate
        print(f"  {layout:7s} {useful:8d} useful tokens in {seconds:6.2f} s = {rate:10,.0f} tokens/s"
              + (f", MFU {100 * mfu:.1f} %" if mfu is not None else ""))
    print(f"packed / padded useful tokens/s: {results['packed'] / results['padded']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
