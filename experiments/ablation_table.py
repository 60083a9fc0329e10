"""Collect the ablation's evaluation.json files into one Markdown table (printed and written to
OUT_DIR/ablation.md). Usage: python experiments/ablation_table.py OUT_DIR"""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ablation")
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
