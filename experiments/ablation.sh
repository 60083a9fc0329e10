#!/usr/bin/env bash
# Issue 3's ablation: {factorized, full, causal} x {lstm, improved prior (+ its decoder)} on real
# Sprites with the cpu preset and a fixed epoch budget, each evaluated with a judge trained on the
# same data.
# Usage: experiments/ablation.sh SHEETS_DIR [OUT_DIR] [EPOCHS] [PHASE]
#   PHASE: all (default), train (judge + the six runs) or evaluate (evaluate + table).
# Runs that already have a checkpoint are resumed, so the script can be re-run after a stop.
set -euo pipefail
sheets=${1:?usage: experiments/ablation.sh SHEETS_DIR [OUT_DIR] [EPOCHS] [PHASE]}
out=${2:-runs/ablation}
epochs=${3:-2}
phase=${4:-all}
mkdir -p "$out"
runs=()
for guide in factorized full causal; do
  for prior in lstm improved; do runs+=("$guide-$prior"); done
done

if [ "$phase" != evaluate ]; then
  [ -f "$out/judge.pt" ] || dsae judge train --data sprites --sheets "$sheets" --out "$out/judge.pt" --quiet
  for name in "${runs[@]}"; do
    guide=${name%-*} prior=${name#*-} run="$out/$name"
    extra=()
    [ "$prior" = improved ] && extra=(--decoder improved --set model.decoder_hidden=256 \
                                      --set model.decoder_channels=16)
    if [ -f "$run/checkpoint.pt" ]; then resume=(--resume); else resume=(); fi
    /usr/bin/time -f "$name trained in %e s" dsae train --data sprites --sheets "$sheets" \
      --guide "$guide" --prior "$prior" "${extra[@]}" --epochs "$epochs" --out "$run" "${resume[@]}" --quiet
  done
fi
if [ "$phase" != train ]; then
  for name in "${runs[@]}"; do
    [ "$out/$name/evaluation.json" -nt "$out/$name/checkpoint.pt" ] ||
      dsae evaluate "$out/$name" --judge "$out/judge.pt" --draws 3 --max-clips 900 > /dev/null
  done
  python experiments/ablation_table.py "$out"
fi
