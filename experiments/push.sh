#!/usr/bin/env bash
# Issue 3's quality push on real Sprites with the cpu preset's networks, in the phases it was run
# (experiments/README.md, "The push"): each phase resumes the same run with other training views
# or likelihood scale; nothing about the networks changes.
#   epochs 1-2   unsupervised (the ablation's factorized-lstm run)
#   epochs 3-4   q(f) reads a sibling clip of the same character   (--f-source sibling)
#   epochs 5-6   ... and q(z) reads the clip with scrambled colours  (--z-source recolour)
#   epochs 7-9   ... with a sharper likelihood                       (model.x_scale = 0.1)
#   epochs 10-END ... and a smaller learning rate                     (train.lr = 3e-4)
# Usage: experiments/push.sh SHEETS_DIR [OUT_DIR] [END]
# Re-running it resumes whatever stopped; a snapshot of each phase's last epoch is kept.
set -euo pipefail
sheets=${1:?usage: experiments/push.sh SHEETS_DIR [OUT_DIR] [END]}
out=${2:-runs/push}
end=${3:-15}
run="$out/run"
data=(--data sprites --sheets "$sheets" --out "$run" --no-report --quiet)
mkdir -p "$out"
[ -f "$out/judge.pt" ] || dsae judge train --data sprites --sheets "$sheets" --out "$out/judge.pt" --quiet
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
  [ -f "$snap/evaluation.json" ] || dsae evaluate "$snap" --judge "$out/judge.pt" --draws 3 --max-clips 900 > /dev/null
done
python experiments/push_table.py "$out"
