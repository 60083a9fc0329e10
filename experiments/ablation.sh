#!/usr/bin/env bash
# The ablation: {factorized, full, causal} x {lstm, improved prior (+ its decoder)} on real
# Sprites with the cpu preset and a fixed epoch budget, each evaluated with a judge trained on the
# same data.
# Usage: experiments/ablation.sh DATA [OUT_DIR] [EPOCHS] [PHASE]
#   DATA: a folder of LPC sheets (real Sprites) or a dataset .npz (`dsae data ... --out FILE`)
#   PHASE: all (default), train (judge + the six runs) or evaluate (evaluate + table).
#   Extra options for every `dsae train` / `judge train` / `evaluate`: $TRAIN_ARGS, $JUDGE_ARGS,
#   $EVAL_ARGS (the tests run the script with tiny networks this way).
# Runs that already have a checkpoint are resumed, so the script can be re-run after a stop.
set -euo pipefail
src=${1:?usage: experiments/ablation.sh DATA [OUT_DIR] [EPOCHS] [PHASE]}
out=${2:-runs/ablation}
epochs=${3:-2}
phase=${4:-all}
if [[ $src == *.npz ]]; then data=(--data npz --data-path "$src"); else data=(--data sprites --sheets "$src"); fi
read -ra train_args <<< "${TRAIN_ARGS:-}"
read -ra judge_args <<< "${JUDGE_ARGS:-}"
read -ra eval_args <<< "${EVAL_ARGS:---draws 3 --max-clips 900}"
mkdir -p "$out"
runs=()
for guide in factorized full causal; do
  for prior in lstm improved; do runs+=("$guide-$prior"); done
done

if [ "$phase" != evaluate ]; then
  [ -f "$out/judge.pt" ] || dsae judge train "${data[@]}" --out "$out/judge.pt" --quiet "${judge_args[@]}"
  for name in "${runs[@]}"; do
    guide=${name%-*} prior=${name#*-} run="$out/$name"
    extra=()
    [ "$prior" = improved ] && extra=(--decoder improved --set model.decoder_hidden=256 \
                                      --set model.decoder_channels=16)
    if [ -f "$run/checkpoint.pt" ]; then resume=(--resume); else resume=(); fi
    start=$SECONDS
    dsae train "${data[@]}" "${train_args[@]}" --guide "$guide" --prior "$prior" "${extra[@]}" \
      --epochs "$epochs" --out "$run" "${resume[@]}" --quiet --no-report
    echo "$name trained in $((SECONDS - start)) s"
  done
fi
if [ "$phase" != train ]; then
  for name in "${runs[@]}"; do
    [ "$out/$name/evaluation.json" -nt "$out/$name/checkpoint.pt" ] ||
      dsae evaluate "$out/$name" --judge "$out/judge.pt" "${eval_args[@]}" > /dev/null
  done
  python "$(dirname "$0")/ablation_table.py" "$out"
fi
