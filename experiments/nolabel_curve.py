"""Judge accuracy against training minutes for one DSAE run trained without labels.

Trains `--judges` judges from seeds 0..N-1 on the run's data (reused when OUT/judges holds them),
then trains one run in OUT/run in segments of `--every` epochs until `--minutes` of training, keeps
a snapshot after each segment (OUT/eN: checkpoint, history, config), scores each snapshot with
every judge (`dsae evaluate`: fix z_1:T and sample f, is the motion kept? fix f and sample z_1:T,
are the attributes kept? and the judges on reconstructions, the ceiling of both), and writes
OUT/curve.csv, OUT/curve.md and OUT/curve.png: every head's accuracy (mean ± std over judges x
draws) and its reconstruction ceiling against training minutes; OUT/hardest.png shows the
reconstructions, early to late, of one test clip per skin tone and per trousers colour.
Re-running resumes whatever stopped; the minutes are the run's own training time (history.json),
evaluations excluded.

    python experiments/nolabel_curve.py runs/curve --sheets ../shared/data/sprites-lpc \
        --preset nolabel --minutes 120
    python experiments/nolabel_curve.py runs/curve --redraw   # tables and figure from snapshots
    python experiments/nolabel_curve.py runs/cmp --compare runs/a runs/b --labels "a" "b"
        # runs/cmp/compare.png: the hardest cases as each run (or snapshot) reconstructs them
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dsae_pyro.data import data_identity, load_dataset, to_tensor  # noqa: E402
from dsae_pyro.evaluate import evaluate_run  # noqa: E402
from dsae_pyro.metrics.judge import save_judge, train_judge  # noqa: E402
from dsae_pyro.posterior import decode, encode  # noqa: E402
from dsae_pyro.runs import TrainingError, run_config  # noqa: E402
from dsae_pyro.train import load_run_and_test, train  # noqa: E402
from dsae_pyro.viz import clip_figure  # noqa: E402

GOAL = {"accuracy": 95.0, "IS": 8.5}  # the targets for no-label Sprites on 2 CPU cores
SNAPSHOT_FILES = ("checkpoint.pt", "history.json", "config.toml")


def judges_for(cfg, folder: Path, count: int, epochs: int) -> list[Path]:
    """Judges from seeds 0..count-1 on cfg's data, trained once and kept in `folder`."""
    paths = [folder / f"judge{seed}.pt" for seed in range(count)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        data = load_dataset(cfg.data.name, cfg.data.path, cfg.data.seed, progress=False)
        folder.mkdir(parents=True, exist_ok=True)
        for path in missing:
            seed = int(path.stem.removeprefix("judge"))
            judge, acc = train_judge(data, epochs=epochs, seed=seed, progress=False)
            save_judge(path, judge, data_identity(cfg.data.name, cfg.data.path, cfg.data.seed), acc)
            print(f"judge {seed}: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items()))
    return paths


def trained_minutes(run_dir: Path) -> tuple[int, float]:
    """Epochs done and training minutes so far (0, 0 before the first epoch)."""
    path = run_dir / "history.json"
    if not path.is_file():
        return 0, 0.0
    history = json.loads(path.read_text())
    return len(history), sum(h["seconds"] for h in history) / 60


def row_of(snapshot: Path) -> dict:
    """One point of the curve from a scored snapshot."""
    s = json.loads((snapshot / "evaluation.json").read_text())
    epochs, minutes = trained_minutes(snapshot)
    row = {"epoch": epochs, "minutes": round(minutes, 2), "psnr": round(s["reconstruction"]["psnr"], 2),
           "IS": round(s["IS"]["mean"], 3), "IS_std": round(s["IS"]["std"], 3)}
    for k in (k.removesuffix("_acc") for k in s if k.endswith("_acc")):
        row[k] = round(100 * s[f"{k}_acc"]["mean"], 2)
        row[f"{k}_std"] = round(100 * s[f"{k}_acc"]["std"], 2)
    for k, v in s["reconstruction"]["judged"].items():
        row[f"{k}_ceiling"] = round(100 * v, 2)
    return row


def heads_of(rows: list[dict]) -> list[str]:
    return [k for k in rows[0] if f"{k}_std" in rows[0] and k != "IS"]


def figure(rows: list[dict], path: Path, title: str) -> None:
    minutes = [r["minutes"] for r in rows]
    fig, (ax, ax_is) = plt.subplots(1, 2, figsize=(12, 4.4), width_ratios=(3, 1))
    for i, k in enumerate(heads_of(rows)):
        colour = f"C{i}"
        mean, std = np.array([r[k] for r in rows]), np.array([r[f"{k}_std"] for r in rows])
        ax.plot(minutes, mean, marker="o", ms=4, color=colour, label=k,
                lw=2.5 if k == "motion" else 1.4)
        ax.fill_between(minutes, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
        if f"{k}_ceiling" in rows[0]:  # what the judges read on reconstructions
            ax.plot(minutes, [r[f"{k}_ceiling"] for r in rows], ls=":", color=colour, lw=1.2)
    ax.plot([], [], ls=":", color="0.3", label="same head on\nreconstructions\n(the ceiling)")
    ax.axhline(GOAL["accuracy"], color="k", lw=0.8, ls="--", label="goal")
    ax.set_xlabel("training minutes (the run's own time in history.json, on its machine and load)")
    ax.set_ylabel("judge accuracy (%), mean ± std\nover judges x draws")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title, fontsize=9)
    ax_is.errorbar(minutes, [r["IS"] for r in rows], [r["IS_std"] for r in rows], marker="o", ms=4,
                   capsize=3)
    ax_is.axhline(GOAL["IS"], color="k", lw=0.8, ls="--")
    ax_is.set_xlabel("training minutes")
    ax_is.set_ylabel("IS of the motion head (fix z, sample f)")
    ax_is.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hardest_cases(snapshots: list[Path], path: Path, rows: int = 4,
                  labels: list[str] | None = None) -> None:
    """Reconstructions by snapshots from first to last of one test clip per value of the two
    attributes the decoder draws worst on Sprites (body: skin tone; bottom: trousers), first
    frame each, under the real frames: what the judges on reconstructions read. With `labels`,
    every snapshot (any runs on the same data), a row each under its label."""
    picked = snapshots[::max(1, -(-len(snapshots) // (rows - 1)))][:rows - 1] + snapshots[-1:]
    picked = snapshots if labels else list(dict.fromkeys(picked))
    _, test = load_run_and_test(picked[0])
    names = test.schema.attribute_names
    cols = [a for a in ("body", "bottom") if a in names] or names[:2]
    idx = [int(np.flatnonzero(test.attributes[:, names.index(a)] == v)[0])
           for a in cols for v in np.unique(test.attributes[:, names.index(a)])]
    x = to_tensor(test.x[idx])
    images = [x[:, 0]]
    for snap in picked:
        run, _ = load_run_and_test(snap)
        images.append(decode(run.model, encode(run.guide, x).as_data())[:, 0])
    labels = ["real"] + (labels or [f"epoch {trained_minutes(p)[0]}, {trained_minutes(p)[1]:.0f} min"
                                    for p in picked])
    fig = clip_figure(torch.stack(images), labels,
                      f"one test clip per value of {' then '.join(cols)}, frame 1; reconstructions")
    fig.savefig(path, dpi=110, bbox_inches="tight")  # long labels stay whole


def write_tables(out: Path, title: str, show: bool = True) -> list[dict]:
    """curve.csv, curve.md and curve.png from every scored snapshot in `out` (the table printed
    when `show`)."""
    snapshots = sorted((p.parent for p in out.glob("e*/evaluation.json")
                        if p.parent.name[1:].isdigit()),  # eN; other folders are the user's
                       key=lambda p: int(p.name[1:]))
    rows = [row_of(p) for p in snapshots]
    if not rows:
        raise SystemExit(f"no scored snapshot in {out} (folders e1, e2, ... with evaluation.json)")
    with open(out / "curve.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    heads = heads_of(rows)
    ceilings = [k for k in heads if f"{k}_ceiling" in rows[0]]
    md = ["| epoch | minutes | " + " | ".join(heads) + " | IS | PSNR | ceiling: "
          + " / ".join(ceilings) + " |", "|---|---|" + "---|" * (len(heads) + 3)]
    md += [f"| {r['epoch']} | {r['minutes']:.0f} | "
           + " | ".join(f"{r[k]:.1f} ± {r[f'{k}_std']:.1f}" for k in heads)
           + f" | {r['IS']:.2f} ± {r['IS_std']:.2f} | {r['psnr']:.1f} | "
           + " / ".join(f"{r[f'{k}_ceiling']:.0f}" for k in ceilings) + " |" for r in rows]
    (out / "curve.md").write_text(f"{title}\n\n" + "\n".join(md) + "\n")
    figure(rows, out / "curve.png", title)
    hardest_cases(snapshots, out / "hardest.png")
    if show:
        print("\n".join(md))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="folder for the judges, the run, its snapshots and the curve")
    p.add_argument("--sheets", default="", help="folder of LPC sheets (default: the preset's data)")
    p.add_argument("--preset", default="nolabel", help="a preset name or .toml (default nolabel)")
    p.add_argument("--minutes", type=float, default=120, help="training minutes (default 120)")
    p.add_argument("--every", type=int, default=2, help="epochs between snapshots (default 2)")
    p.add_argument("--max-epochs", type=int, default=0,
                   help="stop after this many epochs even if minutes remain (default 0: no cap)")
    p.add_argument("--seed", type=int, default=0, help="the run's training seed")
    p.add_argument("--judges", type=int, default=3, help="judges from seeds 0..N-1 (default 3)")
    p.add_argument("--judge-epochs", type=int, default=6, help="epochs of each judge (default 6)")
    p.add_argument("--draws", type=int, default=3, help="protocol draws per judge (default 3)")
    p.add_argument("--max-clips", type=int, default=900, help="test clips scored (0: all)")
    p.add_argument("--iw-samples", type=int, default=16,
                   help="K of the importance-weighted bound on 256 clips (default 16)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set train.nce_f_weight=50 (repeatable)")
    p.add_argument("--redraw", action="store_true", help="only the tables and figure")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN",
                   help="only OUT/compare.png: the hardest cases as these runs reconstruct them")
    p.add_argument("--labels", nargs="+", default=[], help="one label per --compare run")
    args = p.parse_args()
    if args.compare:
        if len(args.labels) not in (0, len(args.compare)):
            p.error(f"--labels gives {len(args.labels)} labels for {len(args.compare)} runs")
        Path(args.out).mkdir(parents=True, exist_ok=True)
        try:
            hardest_cases([Path(r) for r in args.compare], Path(args.out) / "compare.png",
                          labels=args.labels or [Path(r).name for r in args.compare])
        except TrainingError as e:
            p.error(f"--compare: {e}")
        return
    out, run_dir = Path(args.out), Path(args.out) / "run"
    resume = (run_dir / "checkpoint.pt").is_file()
    cfg = run_config(None if resume else args.preset, args.set, run_dir, resume,
                     args.sheets or None)
    if not resume:
        cfg.train.seed = args.seed
    title = (f"{cfg.preset} preset, {cfg.data.name}, training seed {cfg.train.seed}; "
             f"{args.judges} judges x {args.draws} draws, {args.max_clips or 'all'} test clips")
    if not args.redraw:
        judges = judges_for(cfg, out / "judges", args.judges, args.judge_epochs)
        epochs, minutes = trained_minutes(run_dir)
        # a constant rate: train.lr_decay_epochs lowers it in a run's last epochs, and a curve
        # trained by minutes in segments has no last epoch (resume a snapshot to see the decay)
        cfg.train.lr_decay_epochs = 0
        # nor does it refit p(z_1:T) after a segment: the segments after it would train on with
        # the refitted mixture (`dsae refit-prior` on a snapshot shows what the refit adds)
        cfg.train.refit_z_components = 0
        while minutes < args.minutes and not 0 < args.max_epochs <= epochs:
            cfg.train.epochs = epochs + args.every
            train(cfg, run_dir, resume=epochs > 0, progress=False, report=False)
            epochs, minutes = trained_minutes(run_dir)
            snap = out / f"e{epochs}"
            snap.mkdir(exist_ok=True)
            for name in SNAPSHOT_FILES:
                shutil.copy(run_dir / name, snap / name)
            evaluate_run(snap, judges, draws=args.draws, max_clips=args.max_clips,
                         iw_samples=args.iw_samples, progress=False)
            write_tables(out, title, show=False)  # the figure so far, while training goes on
            print(f"epoch {epochs}, {minutes:.1f} training minutes")
    write_tables(out, title)


if __name__ == "__main__":
    main()
