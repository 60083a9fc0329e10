"""Collect the ablation's evaluation.json files into one Markdown table (printed and written to
OUT_DIR/ablation.md). Usage: python experiments/ablation_table.py OUT_DIR"""

import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.split(" Usage:")[0])
parser.add_argument("out", nargs="?", default="runs/ablation",
                    help="ablation.sh's output folder (default runs/ablation)")
out = Path(parser.parse_args().out)
if not any(out.glob("*-*/evaluation.json")):
    parser.error(f"{out} holds no GUIDE-PRIOR/evaluation.json: run experiments/ablation.sh first")
header = ("guide-prior", "train min", "ELBO", "IWAE-16", "motion", "action", "direction", "IS",
          "body", "bottom", "top", "hair", "PSNR", "cos f same app / same motion",
          "cos z same motion / same app", "MIG(f)")
rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
for ev in sorted(out.glob("*-*/evaluation.json")):
    s = json.loads(ev.read_text())
    hist = json.loads((ev.parent / "history.json").read_text())
    acc = [f"{100 * s[k]['mean']:.1f}" for k in ("motion_acc", "action_acc", "direction_acc")]
    attrs = [f"{100 * s[f'{a}_acc']['mean']:.1f}" for a in ("body", "bottom", "top", "hair")]
    cos = s["cosine"]
    app, mot = cos["same appearance, other motion"], cos["other appearance, same motion"]
    rows.append(
        f"| {ev.parent.name} | {sum(h['seconds'] for h in hist) / 60:.0f} | "
        f"{s['bounds']['elbo']:.0f} | {s['bounds']['iwae']:.0f} | " + " | ".join(acc) +
        f" | {s['IS']['mean']:.2f} | " + " | ".join(attrs) +
        f" | {s['reconstruction']['psnr']:.1f} | {app['f']['mean']:.2f} / {mot['f']['mean']:.2f} | "
        f"{mot['z']['mean']:.2f} / {app['z']['mean']:.2f} | "
        f"{s['f_disentanglement']['mig']['mig']:.3f} |")
table = "\n".join(rows) + "\n"
(out / "ablation.md").write_text(table)
print(table)
