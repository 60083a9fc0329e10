"""The Sprites disentanglement protocol (Li & Mandt 2018; Das & Dandi), judged by a trained classifier.

- fix z_1:T (posterior means), sample f ~ p(f), decode: does the judge still see the source motion?
  Accuracy of motion, and of its parts (Sprites: action and direction); IS, H(y|x), H(y) of the
  motion softmax.
- fix f (posterior mean), sample z_1:T from the learned prior, decode: does the judge still see the
  source's attributes (Sprites: body, bottom, top and hair)?
The heads come from the clips' label schema, so other labelled datasets (moving digits) use the
same protocol.
Each is repeated over `draws` random draws (mean and std), from a fixed seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pyro
import torch
from tqdm import tqdm

from ..data import Schema, Split, to_tensor
from ..posterior import decode, encode
from .bounds import importance_bound
from .judge import head_accuracies, head_confusions

PUBLISHED = {  # real Sprites, (motion accuracy %, IS, H(y|x), H(y)); DSVAE as reported by S3VAE
    "DSVAE (Li & Mandt; unsupervised)": (90.73, 8.384, 0.072, 2.192),
    "S3VAE (self-supervised)": (99.49, 8.637, 0.041, 2.197),
    "C-DSVAE (self-supervised)": (99.99, 8.871, 0.014, 2.197),
}


def inception_stats(probs: torch.Tensor) -> dict[str, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))), H(y|x) and H(y) from a table of softmax rows (N, K)."""
    p = probs.double().clamp_min(1e-12)
    p_y = p.mean(0)
    h_y_given_x = float(-(p * p.log()).sum(1).mean())
    h_y = float(-(p_y * p_y.log()).sum())
    kl = float((p * (p.log() - p_y.log())).sum(1).mean())
    return {"IS": math.exp(kl), "H(y|x)": h_y_given_x, "H(y)": h_y}


def _judges(predict: Callable | Sequence[Callable]) -> list[Callable]:
    return [predict] if callable(predict) else list(predict)


def _draw_scores(motion_probs: torch.Tensor, attr_pred: dict[str, np.ndarray], split: Split
                 ) -> dict[str, float]:
    """One judge's scores of one draw: motion (and its parts) with IS, and every attribute."""
    schema, parts = split.schema, split.schema.part_labels(split.motion)
    pred = motion_probs.argmax(-1).numpy()
    scores = {"motion_acc": float((pred == split.motion).mean()),
              **{f"{k}_acc": float((v == parts[k]).mean())
                 for k, v in schema.part_labels(pred).items()},
              **inception_stats(motion_probs)}
    for j, a in enumerate(schema.attribute_names):
        scores[f"{a}_acc"] = float((attr_pred[a] == split.attributes[:, j]).mean())
    return scores


def judge_generated(predict: Callable | Sequence[Callable], generate: Callable, split: Split,
                    draws: int = 3, seed: int = 0, batch_size: int = 64, device="cpu",
                    progress: bool = False) -> dict:
    """Score generated clips. `generate(x)` returns (clips that keep x's motion, clips that keep
    x's appearance); `predict(clips)` returns a judge's softmax per head, or give a list of
    judges: every draw's clips are then scored by each. Returns, per score, the mean and std
    over judges x draws, and each judge's mean over draws ("per_judge")."""
    judges, attrs = _judges(predict), split.schema.attribute_names
    per_judge: list[list[dict]] = [[] for _ in judges]
    bar = tqdm(total=draws * len(split), disable=not progress, unit="clip", desc="evaluating")
    for draw in range(draws):
        pyro.set_rng_seed(seed + draw)
        motion_probs = [[] for _ in judges]
        attr_pred = [{a: [] for a in attrs} for _ in judges]
        for i in range(0, len(split), batch_size):
            x = to_tensor(split.x[i:i + batch_size], device)
            keep_motion, keep_appearance = generate(x)
            for j, judge in enumerate(judges):
                motion_probs[j].append(judge(keep_motion)["motion"])
                out = judge(keep_appearance)
                for a in attrs:
                    attr_pred[j][a].append(out[a].argmax(-1).numpy())
            bar.update(len(x))
        for j in range(len(judges)):
            per_judge[j].append(_draw_scores(torch.cat(motion_probs[j]),
                                             {a: np.concatenate(v) for a, v in attr_pred[j].items()},
                                             split))
    bar.close()
    every = [s for scores in per_judge for s in scores]
    return {k: {"mean": float(np.mean([d[k] for d in every])),
                "std": float(np.std([d[k] for d in every])), "draws": draws,
                "judges": len(judges),
                "per_judge": [float(np.mean([d[k] for d in scores])) for scores in per_judge]}
            for k in every[0]}


@torch.no_grad()
def posterior_pass(model, guide, split: Split, batch_size: int = 64, device="cpu",
                   predict: Callable | Sequence[Callable] | None = None
                   ) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """One pass over the clips: per-pixel MSE and PSNR (dB, peak 1) of posterior-mean
    reconstructions, and the posterior means of f (N, F) and z_1:T (N, T, Z). With a judge's
    `predict` (or a list of judges), also the accuracy per head on the reconstructions, the
    ceiling of both generation tests, what a judge can still read once nothing is resampled:
    "judged" is the mean over judges, "judged_each" one dict per judge, "confusions_each" each
    judge's confusion counts per head (`head_confusions`): which classes the decoder draws so
    that they are read as others."""
    judges = _judges(predict) if predict is not None else []
    se, n, fs, zs = 0.0, 0, [], []
    preds: list[dict] = [{} for _ in judges]
    for i in range(0, len(split), batch_size):
        x = to_tensor(split.x[i:i + batch_size], device)
        post = encode(guide, x)
        recon = decode(model, post.as_data())
        se += float(((recon - x) ** 2).sum())
        n += x.numel()
        fs.append(post.f.cpu())
        zs.append(post.z.cpu())
        for judge, pred in zip(judges, preds, strict=True):
            for k, v in judge(recon).items():
                pred.setdefault(k, []).append(v.argmax(-1).cpu().numpy())
    mse = se / n
    stats = {"mse": mse, "psnr": 10 * math.log10(1 / mse)}
    if judges:
        each = [head_accuracies(pred, split) for pred in preds]
        stats["judged"] = {k: float(np.mean([e[k] for e in each])) for k in each[0]}
        stats["judged_each"] = each
        stats["confusions_each"] = [head_confusions(pred, split) for pred in preds]
    return stats, torch.cat(fs), torch.cat(zs)


@torch.no_grad()
def likelihood_bounds(model, guide, split: Split, num_samples: int = 16, batch_size: int = 64,
                      device="cpu", seed: int = 0) -> dict:
    """Test ELBO and IWAE_K bound on log p(x) per clip (nats), from the same K draws per clip."""
    pyro.set_rng_seed(seed)
    iw, elbo = [], []
    for i in range(0, len(split), batch_size):
        x = to_tensor(split.x[i:i + batch_size], device)
        b_iw, b_elbo = importance_bound(model.model, guide, x, num_samples)
        iw.append(b_iw.cpu())
        elbo.append(b_elbo.cpu())
    return {"elbo": float(torch.cat(elbo).mean()), "iwae": float(torch.cat(iw).mean()),
            "num_samples": num_samples, "clips": len(split)}


def dsae_generator(model, guide) -> Callable:
    """generate(x) for a trained DSAE: keep the posterior-mean z_1:T and sample f ~ p(f); keep
    the posterior-mean f and sample z_1:T from the learned prior."""

    def generate(x):
        post = encode(guide, x)
        return decode(model, post.z_data()), decode(model, {"f": post.f})

    return generate


def markdown_table(scores: dict, schema: Schema, published: bool = True) -> str:
    """Our numbers for the heads of the clips' label `schema` (motion, its parts, the attributes),
    beside the published numbers on real Sprites when `published` (only comparable on that
    dataset, and with the published papers' own judges). Scored by several judges, one row per
    judge follows each mean, so their disagreement stays visible."""
    def cell(k, scale=1.0, digits=3):
        s = scores[k]
        if s.get("draws", 1) * s.get("judges", 1) == 1:  # no spread to show
            return f"{s['mean'] * scale:.{digits}f}"
        return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"

    def judge_cell(k, j, scale=1.0, digits=3):
        return f"{scores[k]['per_judge'][j] * scale:.{digits}f}"

    parts, attrs = [p for p, _ in schema.parts], schema.attribute_names
    judges = scores["motion_acc"].get("judges", 1)
    draws = scores["motion_acc"].get("draws", 1)
    spread = ("mean ± std over judges x draws" if judges > 1 else
              "mean ± std over draws" if draws > 1 else "one draw, one judge")
    motion = ["motion_acc", "IS", "H(y|x)", "H(y)", *(f"{p}_acc" for p in parts)]
    scale = {k: (100, 2) if k.endswith("_acc") else (1, 3) for k in motion}
    rows = ["| model | motion acc (%) | IS | H(y\\|x) | H(y) | "
            + "".join(f"{p} acc (%) | " for p in parts),
            "|---|---|---|---|---|" + "---|" * len(parts),
            f"| this run ({spread}) | " + " | ".join(cell(k, *scale[k]) for k in motion) + " |"]
    rows += [f"| judge {j + 1} (mean over draws) | "
             + " | ".join(judge_cell(k, j, *scale[k]) for k in motion) + " |"
             for j in range(judges if judges > 1 else 0)]
    rows += [f"| {name}, published, own judge | {a} | {i} | {hx} | {hy} |" + " |" * len(parts)
             for name, (a, i, hx, hy) in PUBLISHED.items() if published]
    rows += ["", f"Fix f, sample z: attribute accuracy (%), {spread}", "",
             "| scored by | " + " | ".join(attrs) + " |", "|---|" + "---|" * len(attrs),
             "| this run | " + " | ".join(cell(f"{a}_acc", 100, 2) for a in attrs) + " |"]
    rows += [f"| judge {j + 1} | " + " | ".join(judge_cell(f"{a}_acc", j, 100, 2) for a in attrs)
             + " |" for j in range(judges if judges > 1 else 0)]
    return "\n".join(rows) + "\n"
