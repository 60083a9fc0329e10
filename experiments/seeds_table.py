"""One configuration over several training seeds: each evaluated run's protocol scores in a
Markdown table with the mean ± std over the runs, and a figure of every run's score per head
beside the judges' ceiling on reconstructions and the goal.

Usage: python experiments/seeds_table.py RUN [RUN ...] [--out seeds] [--goal 95]
Each RUN is a run folder that `dsae evaluate --judge ...` has scored (evaluation.json). Writes
OUT.md and OUT.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dsae_pyro.config import SCALE_NAMES, Config  # noqa: E402
from dsae_pyro.runs import load_checkpoint  # noqa: E402


def scores(run: Path) -> dict:
    """The numbers of one run: its seed, training minutes, prior, and per head the protocol's
    accuracy (%) and the judges' on reconstructions (%), with IS and PSNR."""
    path = run / "evaluation.json"
    if not path.is_file():
        sys.exit(f"{run} has no evaluation.json: score it first with "
                 f"`dsae evaluate {run} --judge judge0.pt judge1.pt judge2.pt --draws 3`")
    ev = json.loads(path.read_text())
    if "motion_acc" not in ev:
        sys.exit(f"{run}'s evaluation ran without a judge; run `dsae evaluate {run} --judge ...`")
    ckpt = load_checkpoint(run)
    cfg = Config.from_dict(ckpt["config"])
    judged = ev["reconstruction"]["judged"]  # the judges' heads: motion, then each attribute
    heads = list(judged)
    return {"run": run.name, "seed": cfg.train.seed,
            "minutes": sum(h["seconds"] for h in ckpt["history"]) / 60,
            "prior": cfg.model.prior_components,
            "refit": "prior_fit" in ckpt,
            "decoder": decoder_refit(ckpt.get("prior_fit", {}).get("decoder")),
            "acc": {h: 100 * ev[f"{h}_acc"]["mean"] for h in heads},
            "std": {h: 100 * ev[f"{h}_acc"]["std"] for h in heads},
            "ceiling": {h: 100 * judged[h] for h in heads},
            "IS": ev["IS"]["mean"], "psnr": ev["reconstruction"]["psnr"]}


def decoder_refit(record: dict | None) -> str:
    """The decoder's refit after training (`dsae refit-prior --decoder-epochs`), in a few words."""
    if not (record and record["adopted"]):
        return "as trained"
    return (f"{record['epochs']} passes" + (" at q's means" if record["at"] == "means" else "")
            + (f" + {record['readback']:g} x read-back" if record.get("readback") else "")
            + (f", {record['likelihood']}" if "likelihood" in record else "")
            + (f" {SCALE_NAMES[record['likelihood']]}={record['x_scale']:g}"
               if record.get("likelihood") in SCALE_NAMES else "")
            + (f", mean margin {record['mean_margin']:g}" if record.get("mean_margin") else ""))


def table(rows: list[dict]) -> str:
    heads = list(rows[0]["acc"])
    out = ["| run | seed | training min | p(z_t \\| z_<t) | decoder | " + " | ".join(heads)
           + " | IS | judges on reconstructions: " + " / ".join(rows[0]["ceiling"]) + " | PSNR |",
           "|" + "---|" * (len(heads) + 8)]
    for r in rows:
        prior = f"mixture of {r['prior']}" + (", refitted" if r["refit"] else "") \
            if r["prior"] > 1 else "one Gaussian"
        out.append(f"| {r['run']} | {r['seed']} | {r['minutes']:.0f} | {prior} | {r['decoder']} | "
                   + " | ".join(f"{r['acc'][h]:.2f} ± {r['std'][h]:.2f}" for h in heads)
                   + f" | {r['IS']:.2f} | " + " / ".join(f"{v:.1f}" for v in r["ceiling"].values())
                   + f" | {r['psnr']:.2f} |")
    if len(rows) > 1:
        def ms(values) -> str:
            return f"**{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}**"
        out.append(f"| mean ± std over {len(rows)} runs | | {np.mean([r['minutes'] for r in rows]):.0f}"
                   " | | | " + " | ".join(ms([r["acc"][h] for r in rows]) for h in heads)
                   + f" | {ms([r['IS'] for r in rows])} | "
                   + " / ".join(f"{np.mean([r['ceiling'][h] for r in rows]):.1f}"
                                for h in rows[0]["ceiling"])
                   + f" | {np.mean([r['psnr'] for r in rows]):.2f} |")
    return "\n".join(out) + "\n"


def figure(rows: list[dict], goal: float, path: Path) -> None:
    heads = list(rows[0]["acc"])
    fig, ax = plt.subplots(figsize=(1.3 * len(heads) + 2, 3.6))
    x = np.arange(len(heads))
    for i, r in enumerate(rows):
        dx = (i - (len(rows) - 1) / 2) * 0.12
        ax.errorbar(x + dx, [r["acc"][h] for h in heads], yerr=[r["std"][h] for h in heads],
                    fmt="o", capsize=3, label=f"{r['run']} (seed {r['seed']})")
        ax.scatter(x + dx, [r["ceiling"][h] for h in heads], marker="_", s=200, color="k",
                   zorder=3)
    ax.axhline(goal, color="tab:red", ls="--", lw=1, label=f"goal {goal:g}%")
    ax.scatter([], [], marker="_", s=200, color="k", label="judges on reconstructions")
    ax.set_xticks(x, heads)
    ax.set_ylabel("accuracy (%): judges x draws")
    low = min(r["acc"][h] - r["std"][h] for r in rows for h in heads)
    ax.set_ylim(min(low, goal) - 2, 100.5)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("motion: fix z_1:T, draw f; attributes: fix f, draw z_1:T", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders scored by `dsae evaluate`")
    p.add_argument("--out", default="seeds", help="writes OUT.md and OUT.png (default: seeds)")
    p.add_argument("--goal", type=float, default=95.0, help="the goal's line, in %% (default 95)")
    args = p.parse_args()
    rows = [scores(run) for run in args.runs]
    text = table(rows)
    Path(f"{args.out}.md").write_text(text)
    figure(rows, args.goal, Path(f"{args.out}.png"))
    print(text + f"wrote {args.out}.md and {args.out}.png")


if __name__ == "__main__":
    main()
