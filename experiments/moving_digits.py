"""Moving digits: does f hold the digit and z_1:T the motion? One DSAE run judged by several judges.

Trains a DSAE with the `digits` preset on the built-in moving digits (or an npz of clips), trains
`--judges` judges from different seeds on the same data, evaluates the run with each (the judge's
protocol: fix z_1:T and sample f, is the motion kept? fix f and sample z_1:T, are digit and font
kept?) and writes one table, mean ± std over judges x draws, to OUT/moving_digits.md, plus the
run's swap grid as OUT/moving_digits_swap.png. Re-running resumes the run and reuses the judges.

    python experiments/moving_digits.py runs/digits [--epochs 20] [--judges 3]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from dsae_pyro.config import Config, load_preset
from dsae_pyro.data import data_identity, load_dataset
from dsae_pyro.evaluate import evaluate_run
from dsae_pyro.metrics.judge import save_judge, train_judge
from dsae_pyro.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="folder for the run, the judges and the table")
    p.add_argument("--preset", default="digits", help="a preset name or .toml (default digits)")
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--judges", type=int, default=3, help="judges from seeds 0..N-1 (default 3)")
    p.add_argument("--judge-epochs", type=int, default=6, help="epochs of each judge")
    p.add_argument("--draws", type=int, default=3, help="draws of the protocol per judge")
    p.add_argument("--data-path", default="", help="an npz of clips instead of the built-in digits")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set model.f_dim=8 (repeatable)")
    args = p.parse_args()
    out = Path(args.out)
    cfg = load_preset(args.preset, Config)
    if args.data_path:
        cfg.data.name, cfg.data.path = "npz", str(Path(args.data_path).resolve())
    cfg.train.epochs = args.epochs
    cfg.override(args.set)
    run_dir = out / "run"
    train(cfg, run_dir, resume=(run_dir / "checkpoint.pt").is_file(), progress=False)

    data = load_dataset(cfg.data.name, cfg.data.path, cfg.data.seed, progress=False)
    judges = []
    for seed in range(args.judges):
        path = out / f"judge{seed}.pt"
        if not path.is_file():
            judge, acc = train_judge(data, epochs=args.judge_epochs, seed=seed, progress=False)
            save_judge(path, judge, data_identity(cfg.data.name, cfg.data.path, cfg.data.seed), acc)
            print(f"judge {seed}: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items()))
        judges.append(path)
    scores = evaluate_run(run_dir, judges, draws=args.draws, progress=False)[0]

    schema = data["test"].schema
    heads = ["motion", *(part for part, _ in schema.parts), *schema.attribute_names]

    def cell(values):
        return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"

    rows = ["| test | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads),
            f"| fix z, sample f (motion heads) / fix f, sample z ({', '.join(schema.attribute_names)})"
            " | " + " | ".join(cell(scores[f"{h}_acc"]["per_judge"]) for h in heads) + " |",
            "| reconstructions (the ceiling) | " + " | ".join(  # the judge has no part heads
                cell([e[h] for e in scores["reconstruction"]["judged_each"]])
                if h in schema.heads else "" for h in heads) + " |"]
    table = (f"DSAE `{args.preset}` preset, {args.epochs} epochs; {args.judges} judges x {args.draws} "
             "draws, judge accuracy (%), mean ± std over judges:\n\n" + "\n".join(rows) + "\n")
    (out / "moving_digits.md").write_text(table)
    shutil.copy(run_dir / "swap.png", out / "moving_digits_swap.png")
    print(table)


if __name__ == "__main__":
    main()
