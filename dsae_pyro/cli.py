"""The `dsae` command: train, generate, swap, report, data, presets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import (
    DATASETS,
    F_SOURCES,
    OBJECTIVES_DSAE,
    REFIT_DECODER_AT,
    REFIT_LIKELIHOODS,
    Z_SOURCES,
    Config,
    ConfigError,
    available_presets,
    load_preset,
)

EXAMPLES = """examples:
  dsae train                                  # cpu preset on the built-in synthetic sprites
  dsae train --data sprites --sheets DIR      # real Sprites from a folder of LPC sheets
  dsae train --data digits                    # moving digits (grayscale 32x32), drawn here
  dsae train --guide full --set train.lr=5e-4 --out runs/full
  dsae train --out runs/full --resume         # continue a run that stopped
  dsae swap runs/full --pairs 6               # style transfer from a checkpoint
  dsae data sprites --sheets DIR --out sprites.npz
  dsae betavae train --objective H --beta 4   # beta-VAE on dSprites (see dsae betavae -h)
"""


# The model.* fields `dsae train` offers as options, with their help.
MODEL_OPTIONS = {
    "guide": "inference network",
    "prior": "prior over z_1:T",
    "decoder": "frame decoder (improved: Yingzhen Li's)",
    "likelihood": "p(x | f, z)",
    "f_encoder": "what q(f) reads (palette: which colours a clip holds, not where)",
    "z_encoder": "what q(z_1:T) reads (silhouette: where the sprite is, not what it wears)",
}


def _at_least(low: int, kind: type = int):
    """An argparse type: a number of `kind` (int or float) >= low."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not value >= low:  # NaN too
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


_positive, _count, _weight = _at_least(1), _at_least(0), _at_least(0, float)
# refit-prior's options of the decoder's refit, with their defaults: set without --decoder-epochs
# they would do nothing, which the command refuses
_DECODER_REFIT = {"decoder_lr": 1e-4, "decoder_at": "draws", "decoder_readback": 0.0,
                  "decoder_likelihood": None, "decoder_x_scale": None,
                  "decoder_mean_margin": None, "decoder_refine": None}


def _add_data_args(p: argparse.ArgumentParser, new: str | None = None) -> None:
    """--data and --sheets: a command that reads a trained run defaults to the run's own data;
    one that starts afresh names its default `new`."""
    p.add_argument("--data", choices=DATASETS,
                   help="dataset (default: " + (new or "the run's own") + ")")
    if new is None:
        where = ("the run's data, if it has moved (default: where the run read it); sprites: a "
                 "folder of LPC sheets, digits: one holding torchvision's MNIST, npz: the file")
    else:
        where = ("sprites: folder of LPC sheets (default: download and cache); digits: folder "
                 "holding torchvision's MNIST (default: font digits); npz: the dataset file")
    p.add_argument("--sheets", "--data-path", dest="data_path", metavar="PATH", help=where)


def main(argv: list[str] | None = None) -> int:
    from .data import BUILDS

    parser = argparse.ArgumentParser(
        prog="dsae", description="Disentangled Sequential Autoencoder (Li & Mandt 2018) in Pyro.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"dsae_pyro {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("train", help="train a DSAE with SVI and write a run report",
                       description="Train a DSAE with SVI. Writes config.toml, checkpoint.pt "
                       "(every epoch), history.csv/json, figures and report.html into --out.")
    p.add_argument("--preset", help=f"one of {available_presets()} or a .toml file (default: "
                   "cpu; a resumed run keeps its own)")
    choices = Config.model_choices()
    for name, help_ in MODEL_OPTIONS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, choices=choices[name],
                       help=f"{help_} (default: the preset's)")
    _add_data_args(p, "the preset's, synthetic")
    p.add_argument("--f-source", choices=F_SOURCES,
                   help="which clip q(f) reads in training: self (unsupervised, default) or "
                        "sibling (another clip of the same character: weak supervision)")
    p.add_argument("--z-source", choices=Z_SOURCES,
                   help="which view q(z_1:T) reads in training: self (default) or recolour "
                        "(colours scrambled per clip, so colours must come from f)")
    p.add_argument("--objective", choices=OBJECTIVES_DSAE,
                   help="elbo (Li & Mandt, default) or contrastive: the ELBO plus InfoNCE bounds on "
                        "I(x; f) and I(x; z) and a penalty on I(f; z), no labels (weights: "
                        "train.nce_f_weight, train.nce_z_weight, train.mi_weight, train.temperature)")
    p.add_argument("--epochs", type=int, help="number of epochs (overrides the preset)")
    for flag, kind, field in (("--lr", float, "train.lr"), ("--batch-size", int, "train.batch_size"),
                              ("--seed", int, "train.seed"), ("--device", str, "train.device"),
                              ("--keep", int, "train.keep")):
        p.add_argument(flag, type=kind, dest=field, metavar=field.split(".")[1].upper(),
                       help=f"sets {field} (the same as --set {field}=...)"
                       + ("; keep the last N epochs' checkpoints beside the latest" if flag == "--keep"
                          else ""))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any preset field, e.g. --set train.lr=5e-4 (repeatable)")
    p.add_argument("--out", help="run folder (default: runs/<time>-<preset>-<guide>-<data>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (an "
                   "evaluation of the epoch it continues is kept as evaluation_e<epoch>.*)")
    p.add_argument("--no-report", action="store_true", help="skip the figures and report.html")
    p.add_argument("--tensorboard", action="store_true", help="live curves in OUT/tensorboard "
                   "(needs pip install 'dsae_pyro[tensorboard]'; watch: tensorboard --logdir runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    for name, help_, description, out, pairs in (
            ("generate", "grids that fix f or z and sample the other",
             "Two grids (PNG and GIF): for each source clip, keep its f and sample z_1:T from the "
             "learned prior (the appearance should stay, the motion change), and keep its z_1:T "
             "and sample f ~ p(f) (the motion should stay, the appearance change).",
             "prefix of the two files (default: "
             "RUN/generate_seed<S>; a folder: inside it)", "source clips"),
            ("swap", "style-transfer grid: swap f and z between test clips",
             "For pairs of test clips A and B, decode f of A with z_1:T of B and the reverse "
             "(PNG and GIF): appearance should follow f, motion z.",
             "the PNG (default: RUN/swap_seed<S>.png; a folder: inside it)", "pairs"),
            ("report", "(re)write every figure and report.html of a run",
             "Redraw loss curves, reconstructions, swaps and generations of a run and write "
             "report.html (with the evaluation when `dsae evaluate` has run).", None, None)):
        q = sub.add_parser(name, help=help_, description=description)
        q.add_argument("checkpoint", help="a run folder or its checkpoint.pt")
        if out:
            q.add_argument("--out", help=out)
            q.add_argument("--seed", type=int, default=0, help="which test clips and samples")
            q.add_argument("--pairs", type=_positive, default=4, help=f"number of {pairs}")
        _add_data_args(q)

    d = sub.add_parser("data", help="build a dataset file (.npz)",
                       description="Build a dataset into an .npz: clips with x_train, x_test "
                       "(uint8, N x T x H x W x C; Sprites: 8 x 64 x 64 x 3, digits: 8 x 32 x 32 x "
                       "1), attributes_*, motion_*, character_* and the labels' schema; dsprites "
                       "with packed (bit-packed images), latents_classes, latents_values.")
    d.add_argument("which", choices=BUILDS, help="the dataset to build")
    d.add_argument("--sheets", help="sprites: folder of LPC sheets; sprites-npy: folder of the "
                   "original {action}_{direction}_frames_{split}.npy files")
    d.add_argument("--download", action="store_true", help="sprites: fetch the sheets first")
    d.add_argument("--base-url", default=None, help="sprites: where to download sheets from")
    d.add_argument("--seed", type=int, default=423,
                   help="synthetic, digits: seed of drawing and split")
    d.add_argument("--mnist", help="digits: a folder holding torchvision's MNIST files, for "
                   "handwritten digits instead of the built-in font digits")
    d.add_argument("--out", required=True, help="output .npz")
    d.add_argument("--force", action="store_true", help="replace --out if it exists")

    j = sub.add_parser("judge", help="train the judge classifier used by `dsae evaluate`",
                       description="Train a clip classifier on a dataset's train split, a head "
                       "for motion and one per attribute of its labels (Sprites: body, bottom, "
                       "top, hair); prints its test accuracy per head.")
    j.add_argument("action", choices=["train"], help="train: fit a judge and save it")
    _add_data_args(j, "synthetic")
    j.add_argument("--epochs", type=_positive, default=6, help="6 reach >= 99.9%% on every head")
    j.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    j.add_argument("--out", required=True, help="where to save the judge (.pt)")
    j.add_argument("--force", action="store_true", help="replace --out if it exists")
    j.add_argument("--quiet", action="store_true", help="no progress bars")

    e = sub.add_parser("evaluate", help="the Sprites protocol on a trained checkpoint",
                       description="Judge generated clips: fix z and sample f (motion kept?), fix f "
                       "and sample z (attributes kept?); also reconstruction error, test ELBO and "
                       "an importance-weighted bound, and Das & Dandi's cosine table. Writes "
                       "evaluation.json/.md/.png and cosine.png into the run folder and adds them "
                       "to report.html.")
    e.add_argument("checkpoint", help="a run folder or its checkpoint.pt")
    e.add_argument("--judge", nargs="+", action="extend", metavar="JUDGE",
                   help="a judge trained on the same dataset (`dsae judge train`), or several "
                   "(e.g. from --seed 0 1 2): each scores the same clips and the tables give the "
                   "mean ± std over judges x draws; without one only what needs no labels runs: "
                   "reconstruction and the bounds")
    e.add_argument("--draws", type=_positive, default=3, help="random draws to average over")
    e.add_argument("--seed", type=int, default=0, help="the draws' random seed")
    e.add_argument("--max-clips", type=_count, default=0,
                   help="score only the first N test clips (default 0: all)")
    e.add_argument("--iw-samples", type=_positive, default=16,
                   help="K of the importance-weighted bound (default 16)")
    e.add_argument("--iw-clips", type=_count, default=256,
                   help="clips the bounds are estimated on (default 256; 0: all scored clips)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_data_args(e)

    f = sub.add_parser("refit-prior", help="refit a trained run's priors as mixtures (and its "
                       "decoder)",
                       description="Fit the priors of a trained run to q of its training clips "
                       "(the ELBO's prior terms, with q and the decoder fixed): p(z_1:T) as a "
                       "mixture of --z-components Gaussians per step, p(f) as a mixture of "
                       "--f-components, so that generated latents land where the clips' "
                       "posteriors are; with --decoder-epochs, then the decoder (the ELBO's "
                       "reconstruction term, with q and the priors fixed; with "
                       "--decoder-readback, plus a term that keeps z_1:T's motion under a new "
                       "f). Saves them in the run's "
                       "checkpoint and redraws report.html; "
                       "the run as trained stays beside it as checkpoint_before_prior_fit.pt, "
                       "and its evaluation as evaluation_before_prior_fit.* (a second "
                       "refit keeps what it replaces as *_before_prior_fit2.*, and so on). "
                       "Then `dsae evaluate` the run again.")
    f.add_argument("checkpoint", help="a run folder or its checkpoint.pt")
    f.add_argument("--z-components", type=_count, default=64,
                   help="Gaussians per step of p(z_1:T) (default 64; 1 refits the single "
                   "Gaussian; 0 leaves it as it is)")
    f.add_argument("--f-components", type=_count, default=0,
                   help="Gaussians of p(f) (default 0: leave p(f) as it is)")
    f.add_argument("--epochs", type=_positive, default=60,
                   help="passes over the training clips' posteriors (default 60)")
    f.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    f.add_argument("--decoder-epochs", type=_count, default=0,
                   help="passes of the decoder's refit over the training clips (default 0: "
                   "leave the decoder as it is)")
    f.add_argument("--decoder-lr", type=float, default=_DECODER_REFIT["decoder_lr"],
                   help="Adam's learning rate of the decoder's refit (default 1e-4)")
    f.add_argument("--decoder-at", choices=REFIT_DECODER_AT, default=_DECODER_REFIT["decoder_at"],
                   help="where the decoder's refit reads f and z_1:T: draws of q (default: the "
                   "ELBO's reconstruction term) or q's means (the deterministic decoder of Ghosh "
                   "et al. 2020: sharper colours, at some cost to clips drawn from the priors; "
                   "experiments/README.md, 'What blurs the skin')")
    f.add_argument("--decoder-readback", type=_weight, default=_DECODER_REFIT["decoder_readback"],
                   metavar="W",
                   help="add W times the read-back term to the decoder's refit: frames drawn "
                   "with a clip's z_1:T and an f from p(f) must give that z_1:T back to q, so "
                   "the motion survives a new f (default 0: none; experiments/README.md, 'The "
                   "motion under a new f')")
    f.add_argument("--decoder-likelihood", choices=REFIT_LIKELIHOODS,
                   help="refit the decoder under this likelihood instead of the run's (the "
                   "trained decoder is scored under it too; the run keeps it if the refit is "
                   "adopted; experiments/README.md, 'A Laplace likelihood')")
    f.add_argument("--decoder-x-scale", type=float, metavar="B",
                   help="its pixel scale, model.x_scale (default: the run's)")
    f.add_argument("--decoder-mean-margin", type=float, metavar="M",
                   help="the mean's margin, model.mean_margin: (1 + 2M) sigmoid - M, so that the "
                   "brightest pixels are reached where the sigmoid still passes a gradient "
                   "(default: the run's)")
    f.add_argument("--decoder-refine", type=_positive, metavar="W",
                   help="give the decoder a head of W channels at the frames' full resolution "
                   "(model.decoder_refine) before its refit, one that starts drawing what the "
                   "decoder drew and can then redraw each pixel from its neighbours; kept if the "
                   "refit is adopted (default: none; experiments/README.md, 'The Laplace refit "
                   "on a third seed, and a head at full resolution')")
    f.add_argument("--seed", type=int, default=0, help="the draws of q and the batch order")
    f.add_argument("--no-report", action="store_true",
                   help="leave report.html and its figures as they are (default: redraw them "
                   "from the refitted priors)")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_data_args(f)

    r = sub.add_parser("presets", help="list presets, or print one to copy and edit")
    r.add_argument("name", nargs="?", help="a preset to print (default: list them)")
    r.add_argument("--betavae", action="store_true", help="the beta-VAE's presets")

    _add_betavae_parser(sub)

    k = sub.add_parser("bench", help="benchmarks: Pyro step vs hand-written, throughput, data, "
                       "evaluation; writes BENCHMARKS.md",
                       description="Time the Pyro SVI step against a hand-written PyTorch step of "
                       "the same networks and ELBO (and the speed levers), side by side in one "
                       "process, plus data build and evaluation times. Writes a Markdown report.")
    k.add_argument("--presets", nargs="+", default=["cpu"], help="presets to time (default: cpu; "
                   "paper runs at batch 2 with two variants on a CPU)")
    k.add_argument("--repeats", type=int, default=20, help="interleaved repeats per variant")
    k.add_argument("--sheets", default="", help="LPC sheets folder: also time the real Sprites build")
    k.add_argument("--no-data", action="store_true", help="skip the data build times")
    k.add_argument("--no-eval", action="store_true", help="skip the evaluation times")
    k.add_argument("--compile", action="store_true", help="also time torch.compile'd networks")
    k.add_argument("--objectives", nargs="+", default=[], metavar="PRESET",
                   help="also time these presets' networks under the ELBO, the contrastive "
                        "objective and its swap term (e.g. nolabel)")
    k.add_argument("--refine", nargs="+", type=int, default=[], metavar="W",
                   help="also time a training step and a decoder refit step with the decoder's "
                        "head at full resolution of these widths (model.decoder_refine) against "
                        "none, on --refine-preset's networks")
    k.add_argument("--refine-preset", default="nolabel", metavar="PRESET",
                   help="the preset whose networks and refit settings --refine times "
                        "(default: nolabel)")
    k.add_argument("--out", default="BENCHMARKS.md", help="the Markdown report (default: "
                   "BENCHMARKS.md)")
    k.add_argument("--force", action="store_true", help="replace --out if it exists")

    args = parser.parse_args(argv)
    if args.command is None:  # `dsae` alone
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ValueError, RuntimeError, OSError) as e:
        print(f"dsae {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; the last finished epoch's checkpoint is kept (use --resume)",
              file=sys.stderr)
        return 130


def _cmd_train(args) -> int:
    from .train import run_config, train

    overrides = list(args.overrides)
    for name in MODEL_OPTIONS:
        if getattr(args, name):
            overrides.append(f"model.{name}={getattr(args, name)}")
    if args.data:
        overrides.append(f"data.name={args.data}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.tensorboard:
        overrides.append("train.tensorboard=true")
    overrides += [f"{k}={v}" for k, v in vars(args).items() if k.startswith("train.") and v is not None]
    for name in ("f_source", "z_source", "objective"):
        if getattr(args, name) is not None:
            overrides.append(f"train.{name}={getattr(args, name)}")
    cfg = run_config(args.preset, overrides, args.out, args.resume, args.data_path)
    train(cfg, args.out, args.resume, progress=not args.quiet, report=not args.no_report)
    return 0


def _load_for_figures(args):
    from .train import load_run_and_test

    return load_run_and_test(args.checkpoint, args.data, args.data_path)


def _run_dir(args) -> Path:
    path = Path(args.checkpoint)
    return path if path.is_dir() else path.parent


def _cmd_swap(args) -> int:
    from .report import swap_grid

    run, test = _load_for_figures(args)
    name = f"swap_seed{args.seed}.png"
    out = Path(args.out) / name if args.out and Path(args.out).is_dir() else args.out
    out = out or _run_dir(args) / name
    print(swap_grid(run, test, out, n_pairs=args.pairs, seed=args.seed))
    return 0


def _cmd_generate(args) -> int:
    from .report import generation_grids

    run, test = _load_for_figures(args)
    name = f"generate_seed{args.seed}"
    prefix = str(Path(args.out) / name) if args.out and Path(args.out).is_dir() else args.out
    prefix = prefix or str(_run_dir(args) / name)
    prefix = prefix.removesuffix(".png")
    for path in generation_grids(run, test, f"{prefix}_fix_f.png", f"{prefix}_fix_z.png",
                                 n_clips=args.pairs, seed=args.seed):
        print(path)
    return 0


def _cmd_report(args) -> int:
    from .report import write_report

    run, test = _load_for_figures(args)
    print(write_report(run, test, _run_dir(args)))
    return 0


def _cmd_data(args) -> int:
    from ._io import check_output
    from .data import build_dataset_file

    check_output(args.out, args.force)
    print(build_dataset_file(args.which, args.out, args.sheets, args.download, args.base_url,
                             args.seed, args.mnist))
    return 0


def _cmd_presets(args) -> int:
    from .betavae.config import BetaVAEConfig
    from .config import Config

    cls = BetaVAEConfig if args.betavae else Config
    if args.name:
        load_preset(args.name, cls)  # validates and gives the error for unknown names
        print(Path(args.name if args.name.endswith(".toml") else cls.PRESET_DIR /
                   f"{args.name}.toml").read_text(), end="")
    else:
        print("\n".join(available_presets(cls)))
    return 0


def _cmd_judge(args) -> int:
    from ._io import check_output
    from .data import data_identity, load_dataset
    from .metrics.judge import save_judge, train_judge

    check_output(args.out, args.force)
    name = args.data or "synthetic"
    data = load_dataset(name, args.data_path or "", progress=not args.quiet)
    start = time.perf_counter()
    judge, acc = train_judge(data, epochs=args.epochs, seed=args.seed, progress=not args.quiet)
    save_judge(args.out, judge, data_identity(name, args.data_path or ""), acc)
    print(f"judge trained in {time.perf_counter() - start:.0f}s; test accuracy: "
          + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items()) + f"; saved to {args.out}")
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run

    _, table = evaluate_run(args.checkpoint, args.judge, draws=args.draws, seed=args.seed,
                            max_clips=args.max_clips, iw_samples=args.iw_samples,
                            iw_clips=args.iw_clips, data=args.data, data_path=args.data_path,
                            progress=not args.quiet)
    print(table)
    print(f"report: {_run_dir(args) / 'report.html'}")
    return 0


def _cmd_refit_prior(args) -> int:
    from .prior_fit import adopted, describe, refit_prior

    given = ["--" + key.replace("_", "-") for key, default in _DECODER_REFIT.items()
             if getattr(args, key) != default]
    if given and not args.decoder_epochs:
        verb = "sets" if len(given) == 1 else "set"
        raise SystemExit(f"dsae refit-prior: {' and '.join(given)} {verb} the decoder's refit, "
                         "which runs only with --decoder-epochs N (N >= 1); add it")

    rec = refit_prior(args.checkpoint, args.z_components, args.f_components, args.epochs,
                      args.lr, args.seed, data=args.data, data_path=args.data_path,
                      progress=not args.quiet, decoder_epochs=args.decoder_epochs,
                      decoder_lr=args.decoder_lr, decoder_at=args.decoder_at,
                      decoder_readback=args.decoder_readback,
                      decoder_likelihood=args.decoder_likelihood,
                      decoder_x_scale=args.decoder_x_scale,
                      decoder_mean_margin=args.decoder_mean_margin,
                      decoder_refine=args.decoder_refine)
    print(describe(rec) + "; " + (
        f"saved in {_run_dir(args) / 'checkpoint.pt'}. Evaluate it again with `dsae evaluate`."
        if adopted(rec) else "nothing written."))
    if adopted(rec) and not args.no_report:  # the figures drawn from the priors are redrawn
        _cmd_report(args)
    return 0


def _add_betavae_parser(sub) -> None:
    from .betavae.config import ARCHS, OBJECTIVES, BetaVAEConfig

    b = sub.add_parser("betavae", help="beta-VAE and its successors on dSprites",
                       description="beta-VAE (objective H), capacity-annealed beta-VAE (B), "
                       "beta-TCVAE (tc) and FactorVAE (factorvae) on dSprites, drawn "
                       "procedurally (or --data-path to the official npz).", epilog=BETAVAE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = b.add_subparsers(dest="action", required=True)
    t = bsub.add_parser("train", help="train with SVI; writes checkpoint, history, figures",
                        description="Train a beta-VAE. Writes config.toml, checkpoint.pt (every "
                        "log_every steps), history.csv/json, traversals, reconstructions, kl.png "
                        "and report.html into --out.")
    t.add_argument("--preset", help=f"one of {available_presets(BetaVAEConfig)} or a .toml file "
                   "(default: cpu; a resumed run keeps its own)")
    t.add_argument("--objective", choices=OBJECTIVES, help="H: recon + beta KL; B: recon + "
                   "gamma |KL - C|; tc: -ELBO + (beta - 1) total correlation (beta-TCVAE); "
                   "factorvae: -ELBO + train.factor_gamma TC from a discriminator (default: the "
                   "preset's)")
    t.add_argument("--arch", choices=ARCHS, help="network (default: the preset's)")
    t.add_argument("--beta", type=float, help="objective H's KL weight, objective tc's TC weight")
    t.add_argument("--steps", type=int, help="training steps (overrides the preset)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any preset field, e.g. --set train.c_steps=20000 (repeatable)")
    t.add_argument("--data-path", help="the official dSprites npz (default: draw and cache)")
    t.add_argument("--out", help="run folder (default: runs/<time>-betavae-<objective>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out (an "
                   "evaluation of the step it continues is kept as evaluation_s<step>.*)")
    t.add_argument("--no-report", action="store_true", help="skip the figures and report.html")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    e = bsub.add_parser("evaluate", help="beta-VAE metric, FactorVAE metric, MIG, latent table",
                        description="Disentanglement metrics (disentanglement_lib definitions) on "
                        "posterior means; writes evaluation.json/.md and updates report.html.")
    v = bsub.add_parser("traverse", help="(re)draw traversals (PNG and GIFs) and the report")
    for q in (e, v):
        q.add_argument("checkpoint", help="a beta-VAE run folder or its checkpoint.pt")
    e.add_argument("--images", type=int, default=50_000,
                   help="random images encoded for the metrics (0: all 737,280)")
    e.add_argument("--num-train", type=int, default=10_000,
                   help="points each metric fits on (disentanglement_lib's default)")
    e.add_argument("--num-eval", type=int, default=5_000, help="points each metric scores")
    e.add_argument("--seed", type=int, default=0, help="the images and points drawn")


BETAVAE_EXAMPLES = """examples:
  dsae betavae train                              # cpu preset: objective H, beta 16, 4,000 steps
  dsae betavae train --objective H --beta 4 --out runs/bvae-h4
  dsae betavae train --objective tc --beta 6 --out runs/tcvae   # beta-TCVAE (Chen et al.)
  dsae betavae train --preset paper --out runs/burgess   # Burgess et al. (a GPU job)
  dsae betavae evaluate runs/bvae-h4              # MIG, FactorVAE and beta-VAE metrics
  dsae betavae traverse runs/bvae-h4              # traversals.png and gifs/
"""


def _cmd_betavae(args) -> int:
    from .betavae.report import write_betavae_report
    from .betavae.train import load_betavae, train_betavae
    from .data.dsprites import load_dsprites
    from .runs import run_config

    if args.action == "train":
        from .betavae.config import BetaVAEConfig

        overrides = list(args.overrides)
        for name in ("objective", "arch", "beta", "steps"):
            value = getattr(args, name)
            if value is not None:
                section = "model" if name == "arch" else "train"
                overrides.append(f"{section}.{name}={value}")
        cfg = run_config(args.preset, overrides, args.out, args.resume, args.data_path,
                         BetaVAEConfig)
        train_betavae(cfg, args.out, args.resume, progress=not args.quiet,
                      report=not args.no_report)
        return 0

    run = load_betavae(args.checkpoint)
    out = _run_dir(args)
    data = load_dsprites(run.cfg.data.path, progress=False)
    if args.action == "evaluate":
        from .betavae.evaluate import evaluate_run

        print(evaluate_run(run, data, out, args.images, args.seed, args.num_train, args.num_eval))
    print(f"report: {write_betavae_report(run, data, out)}")
    return 0


def _cmd_bench(args) -> int:
    from ._io import check_output
    from .bench import run_benchmarks

    check_output(args.out, args.force)
    text = run_benchmarks(args.presets, args.repeats, args.sheets, not args.no_data,
                          not args.no_eval, args.compile, objectives=args.objectives,
                          refine=args.refine, refine_preset=args.refine_preset)
    Path(args.out).write_text(text + "\n")
    print(f"wrote {args.out}")
    return 0


COMMANDS = {"train": _cmd_train, "generate": _cmd_generate, "swap": _cmd_swap,
            "report": _cmd_report, "judge": _cmd_judge, "evaluate": _cmd_evaluate,
            "data": _cmd_data, "presets": _cmd_presets, "betavae": _cmd_betavae,
            "bench": _cmd_bench, "refit-prior": _cmd_refit_prior}

if __name__ == "__main__":
    sys.exit(main())
