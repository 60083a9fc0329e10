"""Objectives x seeds on dSprites, the way Locatello et al. (ICML 2019) compare them: every run
trained (or resumed) and evaluated, then one table of mean +- std over seeds per metric
(OUT/sweep.md) and a box plot per metric (OUT/sweep.png).

Usage: python experiments/betavae_sweep.py OUT [--objectives H tc factorvae] [--seeds 0 1 2]
           [--steps 1500] [--images 50000] [--set train.beta=6 ...] [--no-train]
An objective may carry its own settings: "tc:train.beta=6" (repeatable, comma-separated).
"""

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dsae_pyro.betavae.config import BetaVAEConfig  # noqa: E402
from dsae_pyro.betavae.evaluate import evaluate_run  # noqa: E402
from dsae_pyro.betavae.train import fit_betavae, load_betavae  # noqa: E402
from dsae_pyro.data.dsprites import load_dsprites  # noqa: E402
from dsae_pyro.runs import CHECKPOINT, run_config  # noqa: E402

METRICS = {"MIG": ("mig", "mig"), "FactorVAE": ("factor_vae", "eval_accuracy"),
           "beta-VAE": ("beta_vae", "eval_accuracy"), "DCI dis.": ("dci", "disentanglement"),
           "SAP": ("sap", "sap")}

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("out")
p.add_argument("--objectives", nargs="+", default=["H", "tc:train.beta=6", "factorvae"])
p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
p.add_argument("--steps", type=int, default=1500)
p.add_argument("--images", type=int, default=50_000, help="images encoded for the metrics")
p.add_argument("--num-train", type=int, default=10_000)
p.add_argument("--num-eval", type=int, default=5_000)
p.add_argument("--preset", default="cpu")
p.add_argument("--set", dest="overrides", action="append", default=[])
p.add_argument("--no-train", action="store_true",
               help="train nothing: tabulate the runs already in OUT at whatever step each "
                    "reached, scoring any not yet scored (runs trained elsewhere, e.g. on a GPU; "
                    "a folder with evaluation.json and history.json needs no checkpoint)")
args = p.parse_args()
out = Path(args.out)
data = None
scores: dict[str, list[dict]] = {}
for seed in args.seeds:  # seed by seed, so that a sweep cut short still compares every objective
    for spec in args.objectives:
        objective, _, extra = spec.partition(":")
        label = spec.replace("train.", "").replace(":", " ")
        run_dir = out / f"{spec.replace(':', '_').replace('train.', '')}-seed{seed}"
        overrides = [*args.overrides, f"train.objective={objective}", f"train.seed={seed}",
                     f"train.steps={args.steps}", *filter(None, extra.split(","))]
        cfg = run_config(args.preset, overrides, kind=BetaVAEConfig)
        ckpt, ev = run_dir / CHECKPOINT, run_dir / "evaluation.json"
        if args.no_train and not ckpt.exists() and not ev.exists():
            p.error(f"--no-train: {run_dir} holds neither a run nor its scores; train it "
                    "first, or drop --no-train")
        train = not args.no_train and not (ckpt.exists()
                                           and load_betavae(run_dir).step >= args.steps)
        # a fresh or resumed run has a newer checkpoint than its scores
        score = train or (ckpt.exists() and (not ev.exists()
                                             or ev.stat().st_mtime < ckpt.stat().st_mtime))
        if score:  # dSprites only when something is trained or scored, not to tabulate
            data = data or load_dsprites(cfg.data.path)
        if train:
            print(f"training {run_dir.name} ({args.steps} steps)", flush=True)
            fit_betavae(cfg, data, run_dir, resume=ckpt.exists(), progress=False)
        if score:
            evaluate_run(load_betavae(run_dir), data, run_dir, args.images, seed, args.num_train,
                         args.num_eval)
        history = json.loads((run_dir / "history.json").read_text())
        s = json.loads(ev.read_text())
        s["minutes"] = sum(h["seconds"] for h in history) / 60
        s["steps"] = history[-1]["step"]
        scores.setdefault(label, []).append(s)


def value(s, metric):
    section, key = METRICS[metric]
    return s[section][key]


def mean_std(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def span(values):
    return f"{min(values):,}" + (f"-{max(values):,}" if max(values) > min(values) else "")


rows = ["| objective | seeds | steps | train min | " + " | ".join(METRICS) + " | shape encoded |",
        "|---" * (5 + len(METRICS)) + "|"]
for label, runs in scores.items():
    # shape is encoded when some latent's normalised MI with shape exceeds its MI with scale
    shape = sum(any(r["factor"] == "shape" for r in s["latents"]) for s in runs)
    rows.append(f"| {label} | {len(runs)} | {span([s['steps'] for s in runs])} | "
                f"{statistics.mean(s['minutes'] for s in runs):.1f} | "
                + " | ".join(mean_std([value(s, m) for s in runs]) for m in METRICS)
                + f" | {shape} of {len(runs)} |")
table = "\n".join(rows) + "\n"
(out / "sweep.md").write_text(table)
print(table)

fig, axes = plt.subplots(1, len(METRICS), figsize=(3 * len(METRICS), 3.2), sharey=False)
for ax, metric in zip(axes, METRICS, strict=True):
    labels = list(scores)
    ax.boxplot([[value(s, metric) for s in scores[k]] for k in labels])
    for i, k in enumerate(labels, 1):
        ax.plot([i] * len(scores[k]), [value(s, metric) for s in scores[k]], "k.", alpha=0.6)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, fontsize=7)
    ax.set_title(metric)
steps = "steps as trained" if args.no_train else f"{args.steps} steps"
fig.suptitle(f"dSprites, {steps}, seeds {args.seeds}", fontsize=9)
fig.tight_layout()
fig.savefig(out / "sweep.png", dpi=110)
print(f"figure: {out / 'sweep.png'}")
