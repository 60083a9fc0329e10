"""`evaluate_run`: the whole evaluation of a trained DSAE run, as `dsae evaluate` runs it.

The judge's protocol (fix z and sample f, fix f and sample z), the judge on reconstructions, the
likelihood bounds, Das & Dandi's cosine table and the disentanglement metrics of f, written into
the run folder as evaluation.json/.md/.png and cosine.png and linked from report.html.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from .config import MIXTURE_PRIORS
from .data import data_identity
from .metrics.disentanglement import disentanglement_markdown, disentanglement_scores
from .metrics.judge import load_judge, misreadings
from .metrics.protocol import (
    PUBLISHED,
    dsae_generator,
    judge_generated,
    likelihood_bounds,
    markdown_table,
    posterior_pass,
)
from .metrics.similarity import cosine_markdown, cosine_table
from .report import write_html
from .train import load_run_and_test
from .viz import cosine_figure, scores_figure


def supervision(cfg) -> str:
    """What a run's training read (objective, views, encoders, labels), so that no table or
    figure sets a weakly supervised run beside published unsupervised numbers without saying so."""
    train = cfg.train
    weak = train.f_source == "sibling"
    parts = [f"objective {train.objective}"
             + (f" (f's positive view: {train.nce_f_view})" if train.objective == "contrastive"
                else ""),
             "q(f) reads " + ("a sibling clip of the same character" if weak else "the clip itself")]
    if train.z_source == "recolour":
        parts.append("q(z) reads the recoloured clip")
    if cfg.model.f_encoder == "palette":
        parts.append("q(f) reads only which colours the clip holds")
    if cfg.model.z_encoder == "silhouette":
        parts.append("q(z) reads only the silhouettes")
    for key, site in MIXTURE_PRIORS.items():
        if getattr(cfg.model, key) > 1:
            parts.append(f"{site} a mixture of {getattr(cfg.model, key)} Gaussians")
    parts.append("weakly supervised by character identity" if weak else "no labels")
    return "; ".join(parts)


def _judged(run, test, judges: list[Path], bounds: dict, draws: int, seed: int, progress: bool,
            out: Path) -> tuple[dict, str]:
    """The judges' protocol, the judges on reconstructions, the cosine table and the
    disentanglement of f, with their Markdown and figures (evaluation.png, cosine.png)."""
    d = run.cfg.data
    loaded = [load_judge(j, data_identity(d.name, d.path, d.seed)) for j in judges]
    predicts = [net.to(run.device).predict for net, _ in loaded]
    scores = judge_generated(predicts, dsae_generator(run.model, run.guide), test, draws=draws,
                             seed=seed, device=run.device, progress=progress)
    scores["reconstruction"], f, z = posterior_pass(run.model, run.guide, test, device=run.device,
                                                    predict=predicts)
    scores["bounds"] = bounds
    scores["cosine"] = cosine_table(f, z, test.character, test.motion)
    scores["f_disentanglement"] = disentanglement_scores(f.numpy(), test.attributes, seed)
    b, rec = bounds, scores["reconstruction"]
    names = test.schema.attribute_names
    scores["judges"] = [{"file": str(j), "test_accuracy": state.get("test_accuracy", {})}
                        for j, (_, state) in zip(judges, loaded, strict=True)]

    def own(judge: dict) -> str:
        return ", ".join(f"{k} {100 * v:.2f}%" for k, v in judge["test_accuracy"].items())

    def on_recon(judged: dict) -> str:
        return ", ".join(f"{k} {100 * v:.2f}%" for k, v in judged.items())

    who = "".join(f"{'- ' if len(judges) > 1 else ''}Judge{f' {i + 1}:' if len(judges) > 1 else ''} "
                  f"`{Path(j['file']).name}` (its "
                  f"own accuracy on the real test clips: {own(j)}).\n"
                  for i, j in enumerate(scores["judges"]))
    each = "".join(f" Judge {i + 1}: {on_recon(e)}." for i, e in enumerate(rec["judged_each"])
                   ) if len(judges) > 1 else ""
    scores["training"] = supervision(run.cfg)

    def misread(confusions: dict) -> str:
        def name(head: str, c: int) -> str:
            return test.schema.motion_name(c) if head == "motion" else f"{head} {c}"
        return "; ".join(f"{name(k, i)} read as {name(k, j).removeprefix(k + ' ')} on {n} of {m}"
                         for k, i, j, n, m in misreadings(confusions)) or "none"

    misreads = "".join(
        f" {'Judge ' + str(i + 1) if len(judges) > 1 else 'The judge'}'s most frequent misreadings"
        f" of reconstructions (a true class, the class read, on how many of its clips): {misread(c)}."
        for i, c in enumerate(rec["confusions_each"]))
    table = (f"Training: {scores['training']}.\n\n{who}\n"
             + markdown_table(scores, test.schema, published=d.name == "sprites")) + (
        f"\nReconstruction MSE {rec['mse']:.5f}, PSNR {rec['psnr']:.2f} dB. The judge on "
        "reconstructions (nothing resampled: the ceiling of both tests above"
        + (", mean over judges" if len(judges) > 1 else "") + "): " + on_recon(rec["judged"])
        + "." + each + misreads +
        f"\nOn {b['clips']} test clips, {b['num_samples']} "
        f"draws each: ELBO {b['elbo']:.1f}, importance-weighted bound {b['iwae']:.1f} nats/clip.\n"
        "\nCosine similarity of posterior means between test clips (Das & Dandi):\n\n"
        + cosine_markdown(scores["cosine"]) +
        f"\nDisentanglement of f against the attributes ({', '.join(names)}; "
        "disentanglement_lib metrics on posterior means of the test clips):\n\n"
        + disentanglement_markdown(scores["f_disentanglement"], names))
    scores_figure(scores, test.schema, PUBLISHED["DSVAE (Li & Mandt; unsupervised)"][0]
                  if d.name == "sprites" else None, scores["training"]).savefig(out / "evaluation.png")
    cosine_figure(f, z, test.character, test.motion).savefig(out / "cosine.png")
    return scores, table


def evaluate_run(path: str | os.PathLike,
                 judge: str | os.PathLike | Sequence[str | os.PathLike] | None = None, draws: int = 3,
                 seed: int = 0, max_clips: int = 0, iw_samples: int = 16, iw_clips: int = 256,
                 data: str | None = None, data_path: str | None = None,
                 progress: bool = True) -> tuple[dict, str]:
    """Evaluate the run in `path` (folder or checkpoint) with a judge trained on the same data;
    returns the scores and their Markdown summary, both also written into the run folder.
    Several judges (a list, e.g. trained from different seeds) score the same generated clips;
    every number is then the mean ± std over judges x draws, with each judge's own mean beside it.
    Without a judge, or on clips without labels, only what needs no labels runs (reconstruction,
    ELBO and importance-weighted bound), and the summary says what was skipped."""
    run, test = load_run_and_test(path, data, data_path)
    if max_clips:
        test = test.subset(slice(0, max_clips))
    out = Path(path) if Path(path).is_dir() else Path(path).parent
    start = time.perf_counter()
    bound_clips = test.subset(slice(0, iw_clips)) if iw_clips else test
    bounds = likelihood_bounds(run.model, run.guide, bound_clips, iw_samples, device=run.device,
                               seed=seed)
    if not judge or not test.labelled:
        rec = posterior_pass(run.model, run.guide, test, device=run.device)[0]
        scores = {"reconstruction": rec, "bounds": bounds}
        why = "no --judge given" if test.labelled else "the clips carry no labels"
        table = (f"Reconstruction MSE {rec['mse']:.5f}, PSNR {rec['psnr']:.2f} dB. On "
                 f"{bounds['clips']} test clips, {bounds['num_samples']} draws each: ELBO "
                 f"{bounds['elbo']:.1f}, importance-weighted bound {bounds['iwae']:.1f} nats/clip."
                 f"\n\nSkipped ({why}): the judge's protocol, the cosine table by character and "
                 "motion, and the disentanglement of f, which all need labels.\n")
    else:
        judges = [Path(judge)] if isinstance(judge, str | os.PathLike) else [Path(j) for j in judge]
        scores, table = _judged(run, test, judges, bounds, draws, seed, progress, out)
        table += f"\n{len(test)} test clips, {draws} draws, {time.perf_counter() - start:.0f}s.\n"
    (out / "evaluation.json").write_text(json.dumps(scores, indent=1))
    (out / "evaluation.md").write_text(table)
    write_html(run, out)
    return scores, table
