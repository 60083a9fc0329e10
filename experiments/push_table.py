"""Protocol scores of the push's snapshots against training epochs: a Markdown table (printed), the
same numbers as CSV, and a figure with the phase changes marked and the published motion accuracies
as lines.

Usage: python experiments/push_table.py SNAPSHOTS [FIGURE]
SNAPSHOTS is the folder push.sh fills (one folder per kept epoch, e2, e4, ..., each with
checkpoint.pt, history.json and the evaluation.json of `dsae evaluate`), or a CSV this script
wrote beside an earlier figure (FIGURE with .csv), to redraw the figure from the measured numbers.
"""

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dsae_pyro.metrics.protocol import PUBLISHED  # noqa: E402

KEYS = ("motion", "action", "direction", "body", "bottom", "top", "hair")
# push.sh's phases: (first epoch, what changes there)
PHASES = ((3, "+ sibling q(f), weak sup."), (5, "+ recoloured q(z)"), (7, "+ x_scale 0.1"),
          (10, "+ lr 3e-4"))


def from_snapshots(folder: Path) -> list[dict]:
    rows = []
    for ev in folder.glob("e*/evaluation.json"):
        s = json.loads(ev.read_text())
        hist = json.loads((ev.parent / "history.json").read_text())
        judged = s["reconstruction"].get("judged", {})  # older evaluations lack it
        rows.append({"epoch": len(hist), "minutes": sum(h["seconds"] for h in hist) / 60,
                     "psnr": s["reconstruction"]["psnr"], "IS": s["IS"]["mean"],
                     "ceiling": " / ".join(f"{100 * judged[a]:.0f}" for a in KEYS[3:])
                     if judged else "", **{k: 100 * s[f"{k}_acc"]["mean"] for k in KEYS}})
    return rows


def from_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v if k == "ceiling" else float(v) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def figure(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9.5, 4.4))
    epochs = [r["epoch"] for r in rows]
    markers = "os^vD<>"
    for i, k in enumerate(KEYS):  # a sideways shift per line: markers at 100% stay visible
        shift = (i - (len(KEYS) - 1) / 2) * 0.2
        ax.plot([e + shift for e in epochs], [r[k] for r in rows], marker=markers[i], ms=5,
                ls="-" if k == "motion" else "--" if i < 3 else ":", label=k,
                lw=2.5 if k == "motion" else 1.3)
    for epoch, what in PHASES:
        ax.axvline(epoch - 0.5, color="0.6", lw=0.8)
        ax.text(epoch - 0.4, 2, what, rotation=90, fontsize=6.5, color="0.35", va="bottom")
    styles = ((0, (1, 1.5)), (0, (4, 2)), (0, (6, 2, 1, 2)))
    for (name, (acc, *_)), ls in zip(PUBLISHED.items(), styles, strict=True):  # with supervision
        ax.axhline(acc, color="0.25", lw=0.8, ls=ls, label=f"{name}: {acc}%, published")
    ax.set(xlabel="epoch (9,000 clips each)", ylabel="judge accuracy (%)", ylim=(0, 103),
           xlim=(min(epochs) - 0.8, max(epochs) + 0.8),
           title="Real Sprites, cpu-preset networks: 2 unsupervised epochs, then phases\n"
           "(grey: published motion accuracies, other models and their own judges)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("snapshots", nargs="?", default="runs/push",
                   help="the folder push.sh fills, or a CSV this script wrote (default runs/push)")
    p.add_argument("figure", nargs="?", default="docs/push_curve.png",
                   help="the figure to write; its .csv beside it (default docs/push_curve.png)")
    args = p.parse_args()
    source, out = Path(args.snapshots), Path(args.figure)
    if not source.exists():
        p.error(f"{source} does not exist: give push.sh's output folder or a CSV")
    rows = sorted(from_csv(source) if source.suffix == ".csv" else from_snapshots(source),
                  key=lambda r: r["epoch"])
    if source.suffix != ".csv":
        with open(out.with_suffix(".csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print("| epoch | train min | " + " | ".join(KEYS) + " | IS | PSNR | judge on reconstructions: "
          "body / bottom / top / hair |")
    print("|" + "---|" * (len(KEYS) + 5))
    for r in rows:
        print(f"| {r['epoch']:.0f} | {r['minutes']:.0f} | " + " | ".join(f"{r[k]:.1f}" for k in KEYS)
              + f" | {r['IS']:.2f} | {r['psnr']:.1f} | {r['ceiling']} |")
    figure(rows, out)
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
