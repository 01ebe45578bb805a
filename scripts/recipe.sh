#!/usr/bin/env bash
# The whole editseq training pipeline for one GPU, in chunks that each fit a 10-minute slot.
#
#   scripts/recipe.sh STEP [STEP...]      run the named steps in order
#   scripts/recipe.sh all                 every step, in order (training steps repeat until done)
#   scripts/recipe.sh status              where each step stands
#
# Steps: corpus tokenizer lintseq pretrain sft collect cycle rank eval eval-refine export
#
# Every training step is one chunk: it stops itself after $BUDGET minutes with a
# checkpoint (`--time-budget`) and the next call continues the same schedule (`--resume`).
# A step whose model is already final is skipped, so re-running a step, or `all`,
# picks up where the last chunk stopped. Each step writes into $WORK and logs to
# $WORK/logs/STEP.log; training logs carry tokens/s and MFU (H100/H200/A100 peaks are
# known; pass PEAK_TFLOPS for another device).
#
# Profiles (PROFILE=...):
#   cpu    the embedded default on two CPU cores in about two hours: Llama d256 x 6 layers,
#          4k BPE (~6.2M parameters); repair-first: pretraining, a short LintSeq SFT, then
#          CYCLE training on synthetic bugs of the corpus's functions (`corpus --bugs`) mixed
#          with LintSeq rows, then rank training on the same bugs (`train rank`: the true fix
#          first among every single-edit repair). The model's own samples are not collected.
#          Run it in the background: BUDGET=30 PROFILE=cpu scripts/recipe.sh all
#   h100   (default) the default model: Llama d512 x 8 layers, 8k BPE (~31.5M parameters),
#          bf16 export 60 MiB in 15 MB shards. Step sizes are estimates for one H100
#          (see README "Training on one GPU"); each training chunk is bounded by $BUDGET anyway.
#          Not bounded by a budget: corpus, lintseq, collect, eval, eval-refine (sized by
#          COLLECT_PROBLEMS, REFINE_PROBLEMS and --limit to fit; lower them if a slot overruns).
#   smoke  a tiny configuration for a CPU in a few minutes: the same commands, tiny sizes.
#          CI runs it (tests/training/test_recipe_smoke.py). Its numbers are meaningless.
#
# TRAJECTORIES="run1.json run2.json" adds verified `editseq refine --trajectory` runs to the
# CYCLE data (repairs made in the editor or the CLI are the same kind of data).
set -euo pipefail

PROFILE=${PROFILE:-h100}
WORK=${WORK:-editseq-work}
EDITSEQ=${EDITSEQ:-editseq}
BUDGET=${BUDGET:-9}
PEAK=${PEAK_TFLOPS:+--peak-tflops $PEAK_TFLOPS}

BUGS=${BUGS:-1}  # synthetic bugs per corpus function (CYCLE repair rows in corpus/bugs.jsonl); 0: none
COLLECT=yes

case "$PROFILE" in
  cpu)
    CORPUS_ARGS="--stdlib --max-lines 40 --instruction-tokens 256 --workers ${CPU_WORKERS:-2}"
    VOCAB=4096
    SIZE=cpu
    PRE_ARGS="--block-size 256 --batch-size 16 --max-steps ${PRETRAIN_STEPS:-800} --lr 2e-3 --warmup 0.02 --save-steps 100 --logging-steps 20 --threads 2"
    LINTSEQ_ARGS="-s 1 --workers ${CPU_WORKERS:-2}"
    SFT_ARGS="--max-steps ${SFT_STEPS:-200} --batch-size 8 --lr 1e-3 --max-length 512 --save-steps 100 --logging-steps 20 --threads 2"
    COLLECT=no
    CYCLE_ARGS="--lintseq-ratio 1 --pgm 0.05 --max-steps ${CYCLE_STEPS:-900} --batch-size 8 --lr 1e-3 --max-length 768 --save-steps 100 --logging-steps 20 --threads 2"
    RANK_ARGS="--steps ${RANK_STEPS:-482} --negatives 15 --learning-rate 1e-4"
    EVAL_ARGS="--n 10 --temperature 0.8 --max-new-tokens 256 --workers 2"
    EVAL_REFINE_ARGS="--n 4 --temperature 0.8 --max-new-tokens 256 --refine-rounds 3 --limit ${REFINE_PROBLEMS:-20} --workers 2"
    ;;
  h100)
    CORPUS_ARGS="--stdlib --site-packages --workers ${CPU_WORKERS:-16}"
    VOCAB=8192
    SIZE=base
    PRE_ARGS="--block-size 1024 --batch-size 64 --max-steps ${PRETRAIN_STEPS:-12000} --lr 1.5e-3 --compile --save-steps 500 --logging-steps 50 --dataloader-workers 2"
    LINTSEQ_ARGS="-s 5 --workers ${CPU_WORKERS:-16}"
    SFT_ARGS="--epochs 2 --batch-size 32 --grad-accum 4 --lr 5e-4 --max-length 1024 --save-steps 500 --logging-steps 50"
    COLLECT_ARGS="--samples 4 --temperature 0.8 --max-new-tokens 256 --limit ${COLLECT_PROBLEMS:-64} --workers 8"
    CYCLE_ARGS="--lintseq-ratio 3 --pgm 0.05 --epochs 1 --batch-size 32 --grad-accum 2 --lr 2e-4 --max-length 1536 --save-steps 500 --logging-steps 20"
    RANK_ARGS="--steps ${RANK_STEPS:-4000} --negatives 15 --learning-rate 1e-4"
    EVAL_ARGS="--n 10 --temperature 0.8 --max-new-tokens 256 --workers 8"
    EVAL_REFINE_ARGS="--n 4 --temperature 0.8 --max-new-tokens 256 --refine-rounds 3 --limit ${REFINE_PROBLEMS:-40} --workers 8"
    ;;
  smoke)
    CORPUS_ARGS="--stdlib --max-files 40 --max-problems 6 --max-lines 12 --instruction-tokens 96"
    VOCAB=1024
    SIZE=tiny
    PRE_ARGS="--block-size 128 --batch-size 8 --max-steps 30 --lr 3e-3 --warmup 3 --save-steps 15 --logging-steps 5 --threads 1"
    LINTSEQ_ARGS="-s 2"
    SFT_ARGS="--max-steps 150 --batch-size 8 --lr 3e-3 --max-length 384 --save-steps 75 --logging-steps 10 --threads 1"
    COLLECT_ARGS="--samples 4 --temperature 0.8 --max-new-tokens 128 --limit 6 --workers 2"
    CYCLE_ARGS="--lintseq-ratio 3 --pgm 0.05 --max-steps 20 --batch-size 4 --lr 1e-3 --max-length 512 --save-steps 10 --logging-steps 5 --threads 1"
    RANK_ARGS="--steps 4 --negatives 4 --learning-rate 1e-3"
    EVAL_ARGS="--n 2 --temperature 0.8 --max-new-tokens 96 --limit 5 --workers 2"
    EVAL_REFINE_ARGS="--n 2 --temperature 0.8 --max-new-tokens 96 --refine-rounds 1 --limit 5 --workers 2"
    ;;
  *) echo "recipe: unknown PROFILE=$PROFILE (cpu, h100 or smoke)" >&2; exit 2 ;;
esac

mkdir -p "$WORK/logs"
QUIET=${QUIET:+--quiet}

run() {  # run STEP-NAME COMMAND...: the command's output goes to the screen and to the step's log
  local name=$1; shift
  echo "recipe[$PROFILE] $name: $*" | tee -a "$WORK/logs/$name.log"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$WORK/logs/$name.log"
  echo "recipe[$PROFILE] $name: done in $((SECONDS - start)) s" | tee -a "$WORK/logs/$name.log"
}

final() {  # final DIR: the training run in DIR has saved its last step
  [[ -f "$1/model.safetensors" || -f "$1/model.safetensors.index.json" ]] && [[ -f "$1/.final" ]]
}

train_chunk() {  # train_chunk NAME DIR COMMAND...: one chunk of a resumable training run
  local name=$1 dir=$2; shift 2
  if final "$dir"; then echo "recipe[$PROFILE] $name: already finished ($dir)"; return 0; fi
  run "$name" "$@" --out "$dir" --resume --time-budget "$BUDGET" $PEAK
  # A chunk that stopped on its budget says so in its summary line; otherwise the schedule is complete.
  if ! grep "^train " "$WORK/logs/$name.log" | tail -n 1 | grep -q "time budget reached"; then
    touch "$dir/.final"
  fi
}

step_corpus() {
  if [[ -f "$WORK/corpus/report.json" ]]; then echo "recipe: corpus exists"; return 0; fi
  run corpus $EDITSEQ corpus $CORPUS_ARGS --bugs "$BUGS" --out "$WORK/corpus" $QUIET
}

step_tokenizer() {
  if [[ -f "$WORK/tokenizer/tokenizer.json" ]]; then echo "recipe: tokenizer exists"; return 0; fi
  run tokenizer $EDITSEQ train tokenizer --data "$WORK/corpus/pretrain.jsonl" "$WORK/corpus/programs.jsonl" \
    --vocab-size "$VOCAB" --out "$WORK/tokenizer"
}

step_lintseq() {
  if [[ -f "$WORK/lintseq.jsonl" ]]; then echo "recipe: lintseq data exists"; return 0; fi
  run lintseq $EDITSEQ lintseq "$WORK/corpus/programs.jsonl" $LINTSEQ_ARGS -o "$WORK/lintseq.jsonl" $QUIET
}

step_pretrain() {
  train_chunk pretrain "$WORK/pretrain" $EDITSEQ train pretrain --data "$WORK/corpus/pretrain.jsonl" \
    --model "size:$SIZE" --tokenizer "$WORK/tokenizer" $PRE_ARGS $QUIET
}

step_sft() {
  final "$WORK/pretrain" || { echo "recipe: pretraining is not finished; run the pretrain step again" >&2; return 1; }
  train_chunk sft "$WORK/sft" $EDITSEQ train lintseq --data "$WORK/lintseq.jsonl" --model "$WORK/pretrain" \
    $SFT_ARGS $QUIET
}

step_collect() {
  if [[ -f "$WORK/cycle.jsonl" ]]; then echo "recipe: CYCLE data exists"; return 0; fi
  if [[ $COLLECT == no ]]; then echo "recipe[$PROFILE]: no sample collection in this profile"; return 0; fi
  final "$WORK/sft" || { echo "recipe: LintSeq SFT is not finished; run the sft step again" >&2; return 1; }
  run collect $EDITSEQ train cycle-collect --model "$WORK/sft" --problems "$WORK/corpus/problems.jsonl" \
    $COLLECT_ARGS ${TRAJECTORIES:+--trajectories $TRAJECTORIES} --out "$WORK/cycle.jsonl" ${QUIET:+--no-progress}
}

step_cycle() {
  local data=()
  [[ -f "$WORK/cycle.jsonl" ]] && data+=("$WORK/cycle.jsonl")
  [[ -f "$WORK/corpus/bugs.jsonl" ]] && data+=("$WORK/corpus/bugs.jsonl")
  [[ ${#data[@]} -gt 0 ]] || { echo "recipe: no CYCLE data: run the collect step, or the corpus step with BUGS > 0" >&2; return 1; }
  final "$WORK/sft" || { echo "recipe: LintSeq SFT is not finished; run the sft step again" >&2; return 1; }
  train_chunk cycle "$WORK/cycle" $EDITSEQ train cycle --data "${data[@]}" \
    --lintseq-data "$WORK/lintseq.jsonl" --model "$WORK/sft" $CYCLE_ARGS $QUIET
}

step_rank() {  # rank training continues for $BUDGET minutes per call, like the other training steps
  final "$WORK/cycle" || { echo "recipe: CYCLE training is not finished; run the cycle step again" >&2; return 1; }
  if final "$WORK/rank"; then echo "recipe[$PROFILE] rank: already finished ($WORK/rank)"; return 0; fi
  [[ -f "$WORK/corpus/bugs.jsonl" ]] || { echo "recipe: rank training needs corpus/bugs.jsonl (BUGS > 0)" >&2; return 1; }
  run rank $EDITSEQ train rank --data "$WORK/corpus/bugs.jsonl" --model "$WORK/cycle" --out "$WORK/rank" \
    --minutes "$BUDGET" $RANK_ARGS
  if grep "^train rank" "$WORK/logs/rank.log" | tail -n 1 | grep -q "finished; model in"; then
    touch "$WORK/rank/.final"
  fi
}

repair_model() {  # the model the recipe ends with: rank-trained when that step ran, else the CYCLE model
  if final "$WORK/rank"; then echo "$WORK/rank"; else echo "$WORK/cycle"; fi
}

step_eval() {
  final "$WORK/cycle" || { echo "recipe: CYCLE training is not finished; run the cycle step again" >&2; return 1; }
  run eval $EDITSEQ eval humaneval --model "$(repair_model)" $EVAL_ARGS --out "$WORK/eval" ${QUIET:+--no-progress}
}

step_eval_refine() {
  run eval-refine $EDITSEQ eval humaneval --model "$(repair_model)" $EVAL_REFINE_ARGS --out "$WORK/eval-refine" \
    ${QUIET:+--no-progress}
}

step_export() {
  run export $EDITSEQ train export --model "$(repair_model)" --out "$WORK/export"
}

status() {
  for dir in pretrain sft cycle rank; do
    if final "$WORK/$dir"; then state=finished
    elif [[ -f "$WORK/$dir/checkpoint/rank_state.json" ]]; then state="in progress ($(grep -o '"step": [0-9]*' "$WORK/$dir/checkpoint/rank_state.json" | grep -o '[0-9]*$') steps)"
    elif compgen -G "$WORK/$dir/checkpoint-*" >/dev/null; then state="in progress ($(ls -d "$WORK/$dir"/checkpoint-* | sed 's/.*checkpoint-//' | sort -n | tail -1) steps)"
    else state="not started"; fi
    echo "$dir: $state"
  done
}

[[ $# -gt 0 ]] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
for step in "$@"; do
  case "$step" in
    all)
      step_corpus; step_tokenizer; step_lintseq
      until final "$WORK/pretrain"; do step_pretrain; done
      until final "$WORK/sft"; do step_sft; done
      step_collect
      until final "$WORK/cycle"; do step_cycle; done
      if [[ -f "$WORK/corpus/bugs.jsonl" ]]; then until final "$WORK/rank"; do step_rank; done; fi
      step_eval; step_eval_refine; step_export ;;
    corpus|tokenizer|lintseq|pretrain|sft|collect|cycle|rank|eval|export) "step_$step" ;;
    eval-refine) step_eval_refine ;;
    status) status ;;
    *) echo "recipe: unknown step $step" >&2; exit 2 ;;
  esac
done
