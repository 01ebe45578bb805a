"""Training: tokenizer, pretraining, LintSeq SFT, CYCLE collection and training, export.

Holds :mod:`.sft` (the shared Trainer core and LintSeq SFT), :mod:`.sft_data`
(rows to tokenised, response-masked examples), :mod:`.pretraining` (BPE and
packed-block pretraining), :mod:`.cycle_data` (repair rows from the model's
own failures), :mod:`.cycle_training` (repair training with past-generation
masking), :mod:`.throughput` (tokens/s, MFU, time budgets), :mod:`.tiny_model`
(small real models built on this machine, for tests and benchmarks) and
:mod:`.export` (bf16 safetensors in size-limited shards).

May import every engine package below it: ``corpus``, ``evaluation``, ``refine``, ``prompting``,
``lintseq``, ``edits``, ``sandbox``, ``backends``, ``defaults``, ``errors``.
"""
