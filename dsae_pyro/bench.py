"""Benchmarks: the Pyro SVI step against a hand-written PyTorch step of the same networks and ELBO,
the speed levers, throughput per preset, data build and evaluation times. `dsae bench` runs them
and writes BENCHMARKS.md with the machine, the versions and the date.

Every comparison is measured side by side in one process, alternating the variants step by step, and
reported as a ratio of medians: absolute times on a shared machine drift, ratios much less.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.util import is_identically_zero
from pyro.optim import Adam
from torch.distributions import Normal

from .config import Config
from .guides import Guide, make_guide
from .model import DSAE
from .nets import default_layout
from .train import Run

AS_TRAINED = "Pyro SVI (as trained)"
EPOCH_CLIPS = 9000  # real Sprites' training split


# --- the hand-written step ---------------------------------------------------------------------
def manual_loss(model: DSAE, guide: Guide, x: torch.Tensor, kl_weight: float = 1.0
                ) -> torch.Tensor:
    """-ELBO of the batch (summed over clips) in plain PyTorch with the model's and guide's own
    modules: the same draws as Trace_ELBO given the same RNG state (f first, then z_1..z_T)."""
    batch, frames = x.shape[:2]
    v = guide.encoder(x)
    q_loc, q_scale = guide.q_f(v)
    q = Normal(q_loc, q_scale)
    f = q.rsample()
    kl = q.log_prob(f).sum() - Normal(0.0, 1.0).log_prob(f).sum()
    h = guide.z_features(v, f)
    z_prev, q_state = v.new_zeros(batch, guide.cfg.z_dim), None
    _, p_state = model.prior.initial(batch, v)
    zs = []
    for t in range(frames):
        q_loc, q_scale, q_state = guide.z_step(h[:, t], z_prev, q_state)
        p_t, p_state = model.prior.step(z_prev, p_state)
        q = Normal(q_loc, q_scale)
        z_prev = q.rsample()
        kl = kl + q.log_prob(z_prev).sum() - p_t.log_prob(z_prev).sum()
        zs.append(z_prev)
    log_lik = model.likelihood(f, torch.stack(zs, 1)).log_prob(x).sum()
    return kl_weight * kl - log_lik


def manual_step(model: DSAE, guide: Guide, optim: torch.optim.Optimizer, x: torch.Tensor) -> float:
    """One optimiser step on manual_loss, without distribution argument checks (as a hand-written
    training loop would run)."""
    old = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        loss = manual_loss(model, guide, x)
    finally:
        torch.distributions.Distribution.set_default_validate_args(old)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return loss.detach()


class OneSyncTrace_ELBO(Trace_ELBO):
    """Trace_ELBO with the ELBO kept on the device: Pyro's reads every sample site's log-probability
    with `.item()` (a GPU sync each, ~20 a DSAE step) and checks the loss for NaN (one more); this
    sums them as tensors, so SVI.step's final `.item()` is the step's only sync. Same value and
    gradients (tests/test_bench.py); no score-function sites (the DSAE's guides have none)."""

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        elbo = model_trace.log_prob_sum()
        surrogate = elbo
        for site in guide_trace.nodes.values():
            if site["type"] == "sample":
                _, score_function, entropy = site["score_parts"]
                if not is_identically_zero(score_function):
                    raise ValueError(f"site {site['name']!r} is not reparameterized")
                elbo = elbo - site["log_prob_sum"]
                if not is_identically_zero(entropy):
                    surrogate = surrogate - entropy.sum()
        return -elbo.detach(), -surrogate

    def loss_and_grads(self, model, guide, *args, **kwargs):
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            particle, surrogate = self._differentiable_loss_particle(model_trace, guide_trace)
            loss = loss + particle / self.num_particles
            (surrogate / self.num_particles).backward(retain_graph=self.retain_graph)
        return loss


# --- timing ------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def side_by_side(steps: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                 warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each step, the variants interleaved call by call."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def fresh(cfg: Config, device: torch.device, seed: int = 0, channels_last: bool = False
          ) -> tuple[DSAE, Guide]:
    """A model and guide with the same initial weights for a given seed."""
    torch.manual_seed(seed)
    model, guide = DSAE(cfg.model).to(device).train(), make_guide(cfg.model).to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
        guide.to(memory_format=torch.channels_last)
    return model, guide


def fresh_svi(cfg: Config, device: torch.device, elbo=Trace_ELBO, compile_nets: bool = False,
              **adam) -> SVI:
    """SVI on fresh networks with Adam as `dsae train` sets it, `adam` changing settings.
    Contiguous weights only: under pyro.module a channels_last weight is never trained
    (experiments/frozen_channels_last.py), so there is no Pyro channels_last row."""
    m, g = fresh(cfg, device)
    if compile_nets:
        m.decoder, g.encoder = torch.compile(m.decoder), torch.compile(g.encoder)
    return SVI(m.model, g, Adam({**Run.optimiser_settings(cfg), **adam}), elbo())


def step_variants(cfg: Config, device: torch.device, x: torch.Tensor) -> dict[str, Callable]:
    """The training step written several ways, each on its own copy of the same networks."""
    lr = cfg.train.lr
    variants = {}
    for cl, name in ((False, "hand-written PyTorch"), (True, "hand-written + channels_last")):
        model, guide = fresh(cfg, device, channels_last=cl)
        optim = torch.optim.Adam([*model.parameters(), *guide.parameters()], lr=lr)
        variants[name] = partial(manual_step, model, guide, optim, x)

    variants[AS_TRAINED] = partial(_svi_step, fresh_svi(cfg, device), x)
    svi_plain = fresh_svi(cfg, device)

    def default_layout_step():
        with default_layout():
            return _svi_step(svi_plain, x)

    variants["Pyro SVI, convs on contiguous activations"] = default_layout_step
    variants["Pyro SVI, validation on"] = partial(_svi_step, fresh_svi(cfg, device), x,
                                                 validate=True)
    variants["Pyro SVI, torch's default Adam (multi-tensor)"] = partial(
        _svi_step, fresh_svi(cfg, device, fused=None), x)
    m2, g2 = fresh(cfg, device)
    optim2 = torch.optim.Adam([*m2.parameters(), *g2.parameters()], lr=lr)
    elbo = Trace_ELBO()

    def lean_step():  # Pyro's ELBO, one multi-tensor torch optimiser instead of SVI's per-param ones
        with pyro.validation_enabled(False):
            loss = elbo.differentiable_loss(m2.model, g2, x)
        optim2.zero_grad(set_to_none=True)
        loss.backward()
        optim2.step()
        return loss.detach()

    variants["Pyro ELBO + one torch.optim.Adam"] = lean_step
    if device.type == "cuda":  # does Pyro's .item() per sample site stall the GPU?
        variants["Pyro SVI, one sync a step"] = partial(
            _svi_step, fresh_svi(cfg, device, OneSyncTrace_ELBO), x)
    return variants


def _svi_step(svi: SVI, x: torch.Tensor, validate: bool = False) -> float:
    with pyro.validation_enabled(validate):
        return svi.step(x)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {torch.get_num_threads()} torch threads, {gpu}; Python "
            f"{platform.python_version()}, torch {torch.__version__}, pyro-ppl {pyro.__version__}")


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (CUDA, max allocated)"
    import resource

    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (process peak RSS)"


def bench_steps(cfg: Config, device: torch.device, batch: int, repeats: int,
                only: tuple[str, ...] = (), compile_nets: bool = False) -> dict[str, float]:
    """Median seconds per training step of each variant on one random batch."""
    torch.manual_seed(0)
    x = torch.rand(batch, cfg.model.frames, *cfg.model.image_shape, device=device)
    variants = step_variants(cfg, device, x)
    if compile_nets and not only:
        svi = fresh_svi(cfg, device, compile_nets=True)
        try:  # the first call compiles (a C++ toolchain on CPU); keep the variant if it works
            start = time.perf_counter()
            svi.step(x)
            print(f"torch.compile: first step (compiling) took {time.perf_counter() - start:.0f}s")
            variants["Pyro SVI + torch.compile(encoder, decoder)"] = lambda: svi.step(x)
        except Exception as e:  # noqa: BLE001 - report and go on without it
            print(f"torch.compile failed, variant skipped: {type(e).__name__}: {e}"[:300])
    if device.type == "cuda":
        svi_bf16 = fresh_svi(cfg, device)

        def bf16_step():
            with torch.autocast("cuda", dtype=torch.bfloat16), pyro.validation_enabled(False):
                return svi_bf16.step(x)
        variants["Pyro SVI + bf16 autocast"] = bf16_step
        m3, g3 = fresh(cfg, device)
        optim3 = torch.optim.Adam([*m3.parameters(), *g3.parameters()], lr=cfg.train.lr)

        def manual_bf16():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return manual_step(m3, g3, optim3, x)
        variants["hand-written + bf16 autocast"] = manual_bf16
    if only:
        variants = {k: v for k, v in variants.items() if k in only}
    return side_by_side(variants, repeats, device, warmup=1 if only else 2)


def bench_objectives(cfg: Config, device: torch.device, x: torch.Tensor, repeats: int
                     ) -> dict[str, float]:
    """Median seconds per `dsae train` step of `cfg`'s networks on the clips `x` under each
    objective, side by side: the ELBO alone, the contrastive terms at `cfg`'s weights, and those
    with the swap term (`cfg`'s weight, else 10)."""
    swap = cfg.train.swap_weight or 10.0
    settings = {"ELBO (Trace_ELBO)": ["train.objective=elbo"],
                "contrastive (InfoNCE f, z; I(f; z))": ["train.objective=contrastive",
                                                        "train.swap_weight=0"],
                f"contrastive + swap term (weight {swap:g})": ["train.objective=contrastive",
                                                               f"train.swap_weight={swap}"]}
    steps = {}
    for name, overrides in settings.items():
        run = Run.create(Config.from_dict(cfg.to_dict(), cfg.preset).override(overrides), device)
        run.model.train()
        run.guide.train()
        steps[name] = partial(_svi_step, run.svi, x)
    return side_by_side(steps, repeats, device, warmup=1)


def bench_refine(cfg: Config, device: torch.device, clips, widths: Sequence[int], repeats: int
                 ) -> dict[tuple[str, int], float]:
    """Median seconds per step of `cfg`'s networks on the clips `clips` (a Split) without the
    decoder's head at full resolution (width 0) and with one of each width in `widths`
    (model.decoder_refine), side by side, keyed by (step, width): a `dsae train` step ("training
    step") and a step of the decoder's refit as `cfg`'s train.refit_decoder_* settings make it
    ("decoder refit step": `prior_fit.fit_decoder` on one batch)."""
    from .data import to_tensor
    from .prior_fit import fit_decoder, posterior_params

    t, x = cfg.train, to_tensor(clips.x, device)
    steps = {}
    for w in (0, *widths):
        run = Run.create(Config.from_dict(cfg.to_dict(), cfg.preset)
                         .override([f"model.decoder_refine={w}"]), device)
        run.model.train()
        run.guide.train()
        q = posterior_params(run.guide, clips, device=device, progress=False)
        steps["training step", w] = partial(_svi_step, run.svi, x)
        steps["decoder refit step", w] = partial(
            fit_decoder, run.model, clips, q, 1, t.refit_decoder_lr, batch_size=len(clips),
            progress=False, at=t.refit_decoder_at, readback=t.refit_decoder_readback,
            guide=run.guide)
    return side_by_side(steps, repeats, device, warmup=1)


def timed(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_data(sheets: str = "") -> dict[str, float]:
    """Seconds to build each dataset from nothing (no cache)."""
    from .data.dsprites import make_dsprites
    from .data.sprites import build_sprites
    from .data.synthetic import make_synthetic

    out = {"synthetic sprites (11,664 clips)": timed(make_synthetic),
           "dSprites (737,280 images)": timed(make_dsprites)}
    if sheets:
        out["real Sprites from the LPC sheets (11,664 clips)"] = timed(
            lambda: build_sprites(sheets, progress=False))
    return out


def bench_evaluation(cfg: Config, device: torch.device, clips: int = 256) -> dict[str, float]:
    """Seconds for each part of `dsae evaluate` on `clips` synthetic test clips (untrained
    networks and judge: the cost does not depend on the weights), and for the beta-VAE metrics."""
    import numpy as np

    from .betavae.evaluate import evaluate_betavae
    from .betavae.model import BetaVAE
    from .config import BetaModelConfig
    from .data.dsprites import make_dsprites
    from .data.synthetic import make_synthetic
    from .metrics.judge import Judge
    from .metrics.protocol import dsae_generator, judge_generated, likelihood_bounds, posterior_pass

    test = make_synthetic()["test"].subset(slice(0, clips))
    model, guide = fresh(cfg, device)
    model.eval()
    guide.eval()
    judge = Judge().to(device)
    gen = dsae_generator(model, guide)
    vae = BetaVAE(BetaModelConfig()).to(device)
    data = make_dsprites()
    return {
        f"judge the protocol, {clips} clips x 1 draw": timed(
            lambda: judge_generated(judge.predict, gen, test, draws=1, device=device)),
        f"reconstruction pass, {clips} clips": timed(
            lambda: posterior_pass(model, guide, test, device=device)),
        f"IWAE bound K=16, {clips // 4} clips": timed(
            lambda: likelihood_bounds(model, guide, test.subset(slice(0, clips // 4)), 16,
                                      device=device)),
        "beta-VAE metrics: encode 50,000 dSprites + beta-VAE/FactorVAE/MIG": timed(
            lambda: evaluate_betavae(vae, data, [0.0] * 10, images=50_000, device=device)),
        "the same metrics alone on 50,000 precomputed codes": timed(
            lambda: _metrics_only(data, np.random.RandomState(0))),
    }


def _metrics_only(data, rng):
    from .metrics.disentanglement import disentanglement_scores

    idx = rng.choice(len(data), 50_000, replace=False)
    return disentanglement_scores(rng.randn(len(idx), 10), data.factors[idx])


LEGEND = """What the step variants are (all on one random batch, the same initial weights):
- hand-written PyTorch: `manual_loss` (the same networks and the same -ELBO, draw for draw, as
  Trace_ELBO: pinned by tests/test_bench.py), `torch.optim.Adam`, no distribution argument checks;
- Pyro SVI (as trained): what `dsae train` runs: `SVI(model, guide, pyro.optim.Adam, Trace_ELBO())`
  with fused Adam, validation off during training and contiguous weights; on a CPU the conv stacks
  run on channels_last activations (`nets.fast_layout`), as in every row but the next;
- Pyro SVI, convs on contiguous activations: the same step in the default layout
  (`nets.default_layout`), as `dsae train` ran before 2026-12-08;
- hand-written + channels_last: the same step with channels_last conv weights as well, to show
  what that layout would add. Pyro cannot use it: `pyro.module` registers a `.contiguous()` copy of
  such a weight and trains the copy, so the weight the network uses never changes
  (`experiments/frozen_channels_last.py`);
- the other rows change one lever each: Pyro validation on; torch's default (multi-tensor) Adam,
  which under Pyro's one optimiser per parameter launches a dozen kernels per tensor; one
  multi-tensor `torch.optim.Adam` with `Trace_ELBO().differentiable_loss` instead of SVI's
  per-parameter optimisers; `torch.compile` of the frame encoder and decoder (compiling is not
  counted); on a GPU bf16 autocast (for both steps) and a Trace_ELBO that keeps the ELBO on the
  device (`OneSyncTrace_ELBO`: Pyro's reads each site's log-probability with `.item()`, ~20 GPU
  syncs a step). An epoch is 9,000 clips (real Sprites' training split) at that step's rate.
`paper` on a CPU runs at batch 2 with 3 repeats (about 7 s a step), so its ratio is a rough one."""


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in r) + " |" for r in rows], ""]


def run_benchmarks(presets: list[str], repeats: int = 20, sheets: str = "", data: bool = True,
                   evaluation: bool = True, compile_nets: bool = False,
                   device: torch.device | None = None, log=print,
                   objectives: Sequence[str] = (), refine: Sequence[int] = (),
                   refine_preset: str = "nolabel") -> str:
    """Every benchmark; returns BENCHMARKS.md's text."""
    from .config import load_preset
    from .data import to_tensor
    from .data.synthetic import make_synthetic
    from .train import fit_to_data

    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lines = ["# Benchmarks", "", f"Written by `dsae bench` on {time.strftime('%Y-%m-%d %H:%M')}.",
             f"Machine: {machine()}; device {device}.", ""]
    base = "hand-written PyTorch"
    for name in presets:
        cfg = load_preset(name)
        batch, reps, only = cfg.train.batch_size, repeats, ()
        if name == "paper" and device.type == "cpu":  # ~5 s a step on 2 cores: the two, briefly
            batch, reps, only = 2, 3, (base, AS_TRAINED)
        log(f"steps: preset {name}, batch {batch}, {reps} interleaved repeats ...")
        t = bench_steps(cfg, device, batch, reps, only, compile_nets)
        rows = [(k, f"{1000 * v:.1f}", f"{v / t[base]:.3f}", f"{batch / v:.1f}",
                 f"{EPOCH_CLIPS * v / batch:.0f}") for k, v in t.items()]
        lines += [f"## Training step, preset `{name}` (batch {batch}, median of {reps}, variants "
                  "interleaved)", ""]
        lines += _table(("step", "ms", "ratio to hand-written", "clips/s", "epoch s"), rows)
        lines += [f"Peak memory after this preset: {peak_memory(device)}.", ""]
        log("\n".join(lines[-len(rows) - 5:]))
    lines += [LEGEND, ""]
    if objectives or refine:
        sprites = make_synthetic()["train"]
    for name in objectives:
        cfg = load_preset(name)
        batch = cfg.train.batch_size
        log(f"objectives: preset {name}, batch {batch}, {repeats} interleaved repeats ...")
        # sprite clips, not noise: the palette q(f)'s cost grows with the colours a clip holds
        # (~45 in a real Sprites clip, one a pixel in noise)
        fit_to_data(cfg, sprites)
        t = bench_objectives(cfg, device, to_tensor(sprites.x[:batch], device), repeats)
        base = next(iter(t.values()))
        rows = [(k, f"{1000 * v:.1f}", f"{v / base:.2f}", f"{EPOCH_CLIPS * v / batch:.0f}")
                for k, v in t.items()]
        lines += [f"## Training objectives, preset `{name}` (batch {batch} synthetic sprite clips, "
                  f"median of {repeats}, variants interleaved)", ""]
        lines += _table(("objective", "ms", "ratio to the ELBO", "epoch s"), rows)
        log("\n".join(lines[-len(rows) - 3:]))
    if refine:
        cfg = load_preset(refine_preset)
        batch = cfg.train.batch_size
        log(f"the decoder's head: preset {refine_preset}, widths {list(refine)}, batch {batch}, "
            f"{repeats} interleaved repeats ...")
        fit_to_data(cfg, sprites)
        t = bench_refine(cfg, device, sprites.subset(slice(0, batch)), refine, repeats)
        rows = [(f"{step}, " + (f"head of {w} channels" if w else "no head"), f"{1000 * v:.1f}",
                 f"{v / t[step, 0]:.2f}", f"{EPOCH_CLIPS * v / batch:.0f}")
                for (step, w), v in t.items()]
        lines += [f"## The decoder's head at full resolution, preset `{refine_preset}` (batch "
                  f"{batch} synthetic sprite clips, median of {repeats}, variants interleaved)", ""]
        lines += _table(("step", "ms", "ratio to no head", "epoch s"), rows)
        log("\n".join(lines[-len(rows) - 3:]))
    if data:
        log("data build times ...")
        rows = [(k, f"{v:.1f}") for k, v in bench_data(sheets).items()]
        lines += ["## Data build (seconds, from nothing, no cache)", ""]
        lines += _table(("dataset", "s"), rows)
    if evaluation:
        log("evaluation times ...")
        rows = [(k, f"{v:.1f}") for k, v in bench_evaluation(load_preset("cpu"), device).items()]
        lines += ["## Evaluation (seconds, cpu preset networks)", ""]
        lines += _table(("part", "s"), rows)
    return "\n".join(lines)
