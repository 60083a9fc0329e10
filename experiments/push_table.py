"""Protocol scores of the push's snapshots against training time: a Markdown table (printed) and
a figure. Usage: python experiments/push_table.py SNAPSHOT_DIR [FIGURE]

SNAPSHOT_DIR holds one folder per kept epoch (e3, e6, ...), each with checkpoint.pt, history.json
and the evaluation.json of `dsae evaluate`.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

snaps = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/push")
figure = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/push_curve.png")
keys = ("motion", "action", "direction", "body", "bottom", "top", "hair")
rows = []
for ev in snaps.glob("e*/evaluation.json"):
    s = json.loads(ev.read_text())
    hist = json.loads((ev.parent / "history.json").read_text())
    judged = s["reconstruction"].get("judged", {})  # older evaluations lack it
    rows.append({"epoch": len(hist), "minutes": sum(h["seconds"] for h in hist) / 60,
                 "psnr": s["reconstruction"]["psnr"], "IS": s["IS"]["mean"],
                 "ceiling": " / ".join(f"{100 * judged[a]:.0f}" for a in keys[3:]) if judged else "",
                 **{k: 100 * s[f"{k}_acc"]["mean"] for k in keys}})
rows.sort(key=lambda r: r["epoch"])
print("| epoch | train min | " + " | ".join(keys) + " | IS | PSNR | judge on reconstructions: "
      "body / bottom / top / hair |")
print("|" + "---|" * (len(keys) + 5))
for r in rows:
    print(f"| {r['epoch']} | {r['minutes']:.0f} | " + " | ".join(f"{r[k]:.1f}" for k in keys)
          + f" | {r['IS']:.2f} | {r['psnr']:.1f} | {r['ceiling']} |")

fig, ax = plt.subplots(figsize=(7, 4))
for k in keys:
    ax.plot([r["epoch"] for r in rows], [r[k] for r in rows], "o-", label=k,
            lw=2.5 if k == "motion" else 1.2)
ax.axhline(95, color="k", ls="--", lw=0.8)
ax.text(0.01, 93, "goal 95%", fontsize=8, transform=ax.get_yaxis_transform(), va="top")
ax.set(xlabel="epoch (9,000 clips each)", ylabel="judge accuracy (%)", ylim=(0, 101),
       title="Real Sprites, cpu preset: 2 unsupervised epochs, then q(f) from a sibling clip")
ax.xaxis.get_major_locator().set_params(integer=True)
ax.legend(fontsize=8, ncol=2, loc="lower right")
fig.tight_layout()
figure.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(figure, dpi=110)
print(f"figure: {figure}")
