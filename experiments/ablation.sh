#!/usr/bin/env bash
# Issue 3's ablation: {factorized, full, causal} x {lstm, improved prior (+ its decoder)} on real
# Sprites with the cpu preset, each evaluated with a judge trained on the same data.
# Usage: experiments/ablation.sh SHEETS_DIR [OUT_DIR]   (about 6 x 13 minutes on 2 CPU cores)
set -euo pipefail
sheets=${1:?usage: experiments/ablation.sh SHEETS_DIR [OUT_DIR]}
out=${2:-runs/ablation}
mkdir -p "$out"
[ -f "$out/judge.pt" ] || dsae judge train --data sprites --sheets "$sheets" --out "$out/judge.pt"
for guide in factorized full causal; do
  for prior in lstm improved; do
    run="$out/$guide-$prior"
    extra=()
    [ "$prior" = improved ] && extra=(--decoder improved --set model.decoder_hidden=256 \
                                      --set model.decoder_channels=16)
    if [ -f "$run/checkpoint.pt" ]; then resume=(--resume); else resume=(); fi
    dsae train --data sprites --sheets "$sheets" --guide "$guide" --prior "$prior" "${extra[@]}" \
      --out "$run" "${resume[@]}" --quiet
    dsae evaluate "$run" --judge "$out/judge.pt" --draws 3
  done
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
rows = ["| guide-prior | motion | action | direction | body | bottom | top | hair | PSNR |",
        "|---|---|---|---|---|---|---|---|---|"]
for run in sorted(Path(sys.argv[1]).glob("*-*/evaluation.json")):
    s = json.loads(run.read_text())
    acc = [f"{100 * s[k]['mean']:.1f}" for k in ("motion_acc", "action_acc", "direction_acc",
                                                 "body_acc", "bottom_acc", "top_acc", "hair_acc")]
    rows.append(f"| {run.parent.name} | " + " | ".join(acc) +
                f" | {s['reconstruction']['psnr']:.1f} |")
print("\n".join(rows))
PY
