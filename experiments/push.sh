#!/usr/bin/env bash
# Issue 3's quality push on real Sprites: the cpu preset, unsupervised for 2 epochs (the ablation's
# factorized-lstm run), then resumed with q(f) reading a sibling clip of the same character
# (train.f_source = sibling: weak supervision by identity) up to EPOCHS, then the protocol.
# Usage: experiments/push.sh SHEETS_DIR [OUT_DIR] [EPOCHS]
# Re-running it resumes whatever stopped.
set -euo pipefail
sheets=${1:?usage: experiments/push.sh SHEETS_DIR [OUT_DIR] [EPOCHS]}
out=${2:-runs/push}
epochs=${3:-20}
data=(--data sprites --sheets "$sheets")
mkdir -p "$out"
[ -f "$out/judge.pt" ] || dsae judge train "${data[@]}" --out "$out/judge.pt" --quiet
resume() { [ -f "$1/checkpoint.pt" ] && echo --resume || true; }
# 1. unsupervised start: the decoder learns to draw while f still sees the clip itself
[ -f "$out/long/history.json" ] && [ "$(python -c "import json; print(len(json.load(open('$out/long/history.json'))))")" -ge 2 ] ||
  dsae train "${data[@]}" --epochs 2 --out "$out/long" $(resume "$out/long") --no-report --quiet
# 2. q(f) reads another clip of the same character, so direction and pose must go through z
dsae train "${data[@]}" --f-source sibling --epochs "$epochs" --out "$out/long" --resume --quiet
dsae evaluate "$out/long" --judge "$out/judge.pt" --draws 3
