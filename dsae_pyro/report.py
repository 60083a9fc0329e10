"""The run report: reconstructions, style transfer and generation grids, loss curves, one HTML page."""

from __future__ import annotations

import html
import re
import warnings
from pathlib import Path

import numpy as np
import pyro
import torch

from .data import Split, to_tensor
from .posterior import decode, encode, swap
from .train import Run
from .viz import plot_history, save_clip_grid


def motion_name(split: Split, i: int) -> str:
    """The motion of clip i as its schema names it (e.g. walk-front), or "clip i" without labels."""
    return split.schema.motion_name(split.motion[i]) if split.labelled else f"clip {i}"


def pick_pairs(split: Split, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n test pairs (a, b) that differ in character and in every part of the motion (Sprites:
    action and direction); where the split has too few such pairs (one character), pairs that
    differ in less, with a warning that says so. Clips without labels are paired at random
    (distinct clips where there are two)."""
    if len(split) == 0:
        raise ValueError("the split has no clips to pick pairs from")
    rng = np.random.RandomState(seed)
    a, b = rng.randint(len(split), size=(2, 200 * n + 1000))
    if not split.labelled:
        ok = a != b if len(split) > 1 else np.ones_like(a, dtype=bool)
        return a[ok][:n], b[ok][:n]
    pa, pb = (split.schema.part_labels(split.motion[i]) for i in (a, b))
    other_char = split.character[a] != split.character[b]
    every_part = np.all([pa[k] != pb[k] for k in pa], axis=0)
    tiers = [(f"character and {' and '.join(pa)}", other_char & every_part),
             ("character", other_char), ("motion", split.motion[a] != split.motion[b]),
             ("clip", a != b)]
    found = [(what, ok) for what, ok in tiers if ok.sum() >= n]
    # a single clip: pair it with itself
    what, ok = found[0] if found else ("nothing (one clip)", np.ones_like(a, dtype=bool))
    if what != tiers[0][0]:
        warnings.warn(f"only {int(tiers[0][1].sum())} of {len(a)} random pairs differ in "
                      f"{tiers[0][0]}; the pairs shown differ in {what} only", stacklevel=2)
    return a[ok][:n], b[ok][:n]


@torch.no_grad()
def swap_grid(run: Run, split: Split, path, n_pairs: int = 4, seed: int = 0) -> Path:
    """For each pair: clip A, clip B, decode(f_A, z_B) and decode(f_B, z_A)."""
    a, b = pick_pairs(split, n_pairs, seed)
    xa, xb = to_tensor(split.x[a], run.device), to_tensor(split.x[b], run.device)
    ab, ba = swap(run.model, run.guide, xa, xb), swap(run.model, run.guide, xb, xa)
    rows, labels = [], []
    for i in range(n_pairs):
        ma, mb = motion_name(split, a[i]), motion_name(split, b[i])
        rows += [xa[i], xb[i], ab[i], ba[i]]
        labels += [f"A: {ma}", f"B: {mb}", f"f(A) z(B) -> {mb}", f"f(B) z(A) -> {ma}"]
    return save_clip_grid(path, torch.stack(rows), labels, "Style transfer: f of one clip decoded "
                          "with z_1:T of the other (red lines separate pairs)", groups=4)


@torch.no_grad()
def generation_grids(run: Run, split: Split, fix_f_path, fix_z_path, n_clips: int = 3,
                     n_samples: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """Fix f (posterior) and sample z from the prior; fix z (posterior) and sample f ~ p(f)."""
    idx, _ = pick_pairs(split, n_clips, seed + 1)
    x = to_tensor(split.x[idx], run.device)
    post = encode(run.guide, x)
    zs = post.z_data()
    pyro.set_rng_seed(seed)
    rows_f, labels_f, rows_z, labels_z = [], [], [], []
    for i in range(n_clips):
        f_i = post.f[i:i + 1].expand(n_samples, -1)
        z_i = {k: v[i:i + 1].expand(n_samples, -1) for k, v in zs.items()}
        rows_f += [x[i], *decode(run.model, {"f": f_i})]  # z_1:T ~ p(z)
        rows_z += [x[i], *decode(run.model, z_i)]  # f ~ p(f)
        labels_f += [f"source {i + 1}"] + [f"z ~ p(z) #{k + 1}" for k in range(n_samples)]
        labels_z += [f"source {i + 1} ({motion_name(split, idx[i])})"] + [
            f"f ~ p(f) #{k + 1}" for k in range(n_samples)]
    g = n_samples + 1
    return (save_clip_grid(fix_f_path, torch.stack(rows_f), labels_f,
                           "Fix f, sample z_1:T from the learned prior (a disentangled model keeps "
                           "the appearance and changes the motion)",
                           groups=g),
            save_clip_grid(fix_z_path, torch.stack(rows_z), labels_z,
                           "Fix z_1:T, sample f ~ p(f) (a disentangled model keeps the motion and "
                           "changes the appearance)", groups=g))


@torch.no_grad()
def reconstruction_grid(run: Run, split: Split, path, n_clips: int = 4, seed: int = 2) -> Path:
    idx, _ = pick_pairs(split, n_clips, seed)
    x = to_tensor(split.x[idx], run.device)
    post = encode(run.guide, x)
    recon = decode(run.model, post.as_data())
    rows = torch.stack([r for pair in zip(x, recon, strict=True) for r in pair])
    labels = [s for i in range(n_clips) for s in (f"clip {i + 1}", "reconstruction")]
    return save_clip_grid(path, rows, labels, "Test clips and their reconstructions (posterior "
                          "means)", groups=2)


FIGURES = {  # report section -> file in the run folder
    "Loss": "loss.png",
    "Reconstructions": "reconstructions.png",
    "Style transfer (swap f and z between test clips)": "swap.png",
    "Generation: fix f, sample z": "generate_fix_f.png",
    "Generation: fix z, sample f": "generate_fix_z.png",
}
EVALUATION_FIGURES = {  # written by `dsae evaluate`
    "Judge accuracies over draws": "evaluation.png",
    "Cosine similarity of f and z_1:T between test clips (Das & Dandi)": "cosine.png",
}


def write_report(run: Run, test: Split, run_dir, title: str | None = None) -> Path:
    """Write every figure and report.html into run_dir; returns the HTML path."""
    run_dir = Path(run_dir)
    plot_history(run_dir / FIGURES["Loss"], run.history)
    reconstruction_grid(run, test, run_dir / FIGURES["Reconstructions"])
    swap_grid(run, test, run_dir / FIGURES["Style transfer (swap f and z between test clips)"])
    generation_grids(run, test, run_dir / FIGURES["Generation: fix f, sample z"],
                     run_dir / FIGURES["Generation: fix z, sample f"])
    return write_html(run, run_dir, title)


def write_html(run: Run, run_dir, title: str | None = None) -> Path:
    """report.html from the figures in run_dir, with the evaluation section when
    `dsae evaluate` has written one."""
    run_dir = Path(run_dir)
    title = title or f"DSAE {run_dir.name}"
    last = run.history[-1]
    t = run.cfg.train
    weighted = t.kl_weight != 1 or t.kl_warmup
    train_name = "train loss (KL-weighted)" if weighted else "train -ELBO"
    scored = f"test clips (the first {t.eval_clips} at most)" if t.eval_clips else "test split"
    rows = "".join(f"<tr><td>{h['epoch']}</td><td>{h['train_loss']:.1f}</td>"
                   f"<td>{h['test_loss']:.1f}</td><td>{h['seconds']:.0f}</td>"
                   f"<td>{h['clips_per_s']:.0f}</td></tr>" for h in run.history)
    m = run.cfg.model
    views = (f"q(f) reads {t.f_source}, q(z) reads {t.z_source}"
             if (t.f_source, t.z_source) != ("self", "self") else "")
    body = [f"<h1>{html.escape(title)}</h1>",
            run_header(run.cfg, {
                "data": f"{run.cfg.data.name} {run.cfg.data.path}".strip(),
                "networks": f"guide {m.guide} (f encoder {m.f_encoder}, z encoder {m.z_encoder}), "
                            f"prior {m.prior}, decoder "
                            f"{m.decoder}" + (f" mixing {m.decoder_colours} colours of "
                                              + ("f" if m.colour_table == "f" else "one palette")
                                              if m.decoder_colours else "")
                            + f", likelihood {m.likelihood}",
                "training": ", ".join(filter(None, [
                    f"objective {t.objective}", views,
                    f"{run.epoch} epoch{'s' * (run.epoch != 1)} on {run.device}"]))}),
            f"<p>Final -ELBO of the {scored}: {last['test_loss']:.1f} nats per clip.</p>",
            f"<table><tr><th>epoch</th><th>{train_name}</th>"
            f"<th>-ELBO, {scored}</th><th>seconds</th><th>clips/s</th></tr>{rows}</table>"]
    body.append(figure_grid(((name, file) for name, file in FIGURES.items()
                             if (run_dir / file).exists()), run_dir))
    if (run_dir / "evaluation.md").exists():
        body.append("<h2>Evaluation (<code>dsae evaluate</code>)</h2>"
                    + markdown_html((run_dir / "evaluation.md").read_text()))
        body.append(figure_grid((name, file) for name, file in EVALUATION_FIGURES.items()
                                if (run_dir / file).exists()))
    body.append(f"<h2>Configuration</h2><pre>{html.escape(run.cfg.to_toml())}</pre>")
    return write_page(run_dir / "report.html", title, body)


STYLE = """body{font-family:sans-serif;max-width:1400px;margin:auto;padding:0 1em}
img{max-width:100%;height:auto} pre{white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5em 0;max-width:100%;display:block;overflow-x:auto}
th,td{border:1px solid #bbb;padding:2px 6px;text-align:right} th{background:#eee}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1em}
.header td{text-align:left}"""


def run_header(cfg, described: dict[str, str]) -> str:
    """A table saying what the run is: `described` rows, the preset, the date, the versions of
    the package, torch and pyro, and the git commit of the package when it is a checkout."""
    import datetime
    import subprocess

    import pyro

    from . import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    rows = {"preset": cfg.preset, **described,
            "written": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "versions": f"dsae_pyro {__version__}{f' ({commit})' if commit else ''}, torch "
                        f"{torch.__version__}, pyro {pyro.__version__}"}
    return "<table class='header'>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()) + "</table>"


def figure_grid(figures, folder: Path | None = None) -> str:
    """(caption, file) pairs side by side where the page is wide enough; a GIF beside a PNG in
    `folder` (the clips playing) is shown under it."""
    def gif(file):
        g = Path(file).with_suffix(".gif")
        return f"<br><img src='{g}' alt='animated'>" if folder and (folder / g).exists() else ""
    return "<div class='grid'>" + "".join(
        f"<figure><figcaption><b>{html.escape(name)}</b></figcaption><img src='{file}'>"
        f"{gif(file)}</figure>" for name, file in figures) + "</div>"


def markdown_html(text: str) -> str:
    """The Markdown this package writes (paragraphs and pipe tables) as HTML."""
    out, table = [], []

    def flush():
        if table:
            head, *rows = [[html.escape(c.strip().replace("\\|", "|"))
                            for c in re.split(r"(?<!\\)\|", r.strip().strip("|"))]
                           for r in table if not set(r.replace("|", "").strip()) <= set("-: ")]
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>")
            table.clear()

    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.lstrip().startswith("|"):
                table.append(line)
            else:
                flush()
                if line.strip():
                    out.append(f"<p>{html.escape(line)}</p>")
        flush()
    return "\n".join(out)


def write_page(path: Path, title: str, body: list[str]) -> Path:
    """An HTML page of the given body parts, with the package's style."""
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
                    f"content='width=device-width'><title>{html.escape(title)}</title><style>"
                    f"{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>")
    return path
