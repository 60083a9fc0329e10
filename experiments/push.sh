#!/usr/bin/env bash
# The quality push on real Sprites with the cpu preset's networks, in the phases it was run
# (experiments/README.md, "The push"): each phase resumes the same run with other training views
# or likelihood scale; nothing about the networks changes.
#   epochs 1-2   unsupervised (the ablation's factorized-lstm run)
#   epochs 3-4   q(f) reads a sibling clip of the same character   (--f-source sibling)
#   epochs 5-6   ... and q(z) reads the clip with scrambled colours  (--z-source recolour)
#   epochs 7-9   ... with a sharper likelihood                       (model.x_scale = 0.1)
#   epochs 10-END ... and a smaller learning rate                     (train.lr = 3e-4)
# Usage: experiments/push.sh DATA [OUT_DIR] [END]
#   DATA: a folder of LPC sheets (real Sprites) or a dataset .npz; $TRAIN_ARGS, $JUDGE_ARGS and
#   $EVAL_ARGS add options to every `dsae train`, `judge train` and `evaluate`.
# Re-running it resumes whatever stopped; a snapshot of each phase's last epoch is kept.
set -euo pipefail
src=${1:?usage: experiments/push.sh DATA [OUT_DIR] [END]}
out=${2:-runs/push}
end=${3:-15}
run="$out/run"
if [[ $src == *.npz ]]; then source=(--data npz --data-path "$src"); else source=(--data sprites --sheets "$src"); fi
read -ra train_args <<< "${TRAIN_ARGS:-}"
read -ra judge_args <<< "${JUDGE_ARGS:-}"
read -ra eval_args <<< "${EVAL_ARGS:---draws 3 --max-clips 900}"
data=("${source[@]}" "${train_args[@]}" --out "$run" --no-report --quiet)
mkdir -p "$out"
[ -f "$out/judge.pt" ] || dsae judge train "${source[@]}" --out "$out/judge.pt" --quiet "${judge_args[@]}"
epochs() { [ -f "$run/history.json" ] && python -c "import json; print(len(json.load(open('$run/history.json'))))" || echo 0; }
phase() {  # phase LAST_EPOCH OPTIONS...: train up to LAST_EPOCH, then keep a snapshot
  local last=$1; shift
  if [ "$(epochs)" -lt "$last" ]; then
    local resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
    dsae train "${data[@]}" "${resume[@]}" --epochs "$last" "$@"
  fi
  [ -d "$out/e$last" ] || { mkdir -p "$out/e$last" && cp "$run"/{checkpoint.pt,history.json,config.toml} "$out/e$last/"; }
}
phase 2
phase 4 --f-source sibling
phase 6 --f-source sibling --z-source recolour
views=(--f-source sibling --z-source recolour --set model.x_scale=0.1)
phase 9 "${views[@]}"
phase "$end" "${views[@]}" --set train.lr=3e-4
for snap in "$out"/e*/; do
  [ -f "$snap/evaluation.json" ] || dsae evaluate "$snap" --judge "$out/judge.pt" "${eval_args[@]}" > /dev/null
done
python "$(dirname "$0")/push_table.py" "$out" "$out/push_curve.png"
