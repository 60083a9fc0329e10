"""Every script in experiments/ runs, with tiny networks and data (like Pyro's test_examples.py):
the scripts that produced the documented numbers must not rot."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from dsae_pyro.data import save_npz
from dsae_pyro.data.digits import make_moving_digits

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
EVAL = "--draws 1 --max-clips 18 --iw-samples 2 --iw-clips 4"

# script -> arguments after it (run in a temporary folder holding tiny.npz and tiny.toml)
SCRIPTS = {
    "ablation.sh": ["tiny.npz", "out", "1"],
    "push.sh": ["tiny.npz", "push", "10"],
    "ablation_table.py": None,  # run by ablation.sh
    "push_table.py": None,  # run by push.sh
    "probe_f.py": ["out/factorized-lstm"],  # after ablation.sh
    "seeds_table.py": ["out/factorized-lstm", "out/full-lstm", "--out", "seeds"],  # same
    "latent_swaps.py": ["out/factorized-lstm", "out/judge.pt", "--clips", "18"],  # same
    "skin_tones.py": ["out/factorized-lstm", "--judge", "out/judge.pt", "--body", "4"],  # same
    "dsprites_sample.py": ["sample.png"],
    "dsprites_factor_gain.py": ["--shifts", "0"],
    "frozen_channels_last.py": [],
    "profile_step.py": None,  # GPU only: test_profile_step_on_cpu_says_so
    "moving_digits.py": ["digits", "--preset", "tiny.toml", "--data-path", "digits.npz",
                         "--epochs", "1", "--judges", "2", "--judge-epochs", "1", "--draws", "1"],
    "nolabel_curve.py": ["curve", "--preset", "tiny.toml", "--max-epochs", "2", "--every", "1",
                         "--judges", "2", "--judge-epochs", "1", "--draws", "1", "--max-clips", "18",
                         "--iw-samples", "2"],
    "refit_prior_samples.py": ["run", "refitted", "--out", "samples.png"],
    "betavae_sweep.py": ["sweep", "--objectives", "tc:train.beta=6", "factorvae", "--seeds",
                         "0", "1", "--steps", "4", "--images", "2000", "--num-train", "300",
                         "--num-eval", "200", "--set", "train.log_every=2",
                         "--set", "train.batch_size=8", "--set", "model.arch=mlp"],
    "betavae_revive.py": None,  # run on the sweep's runs in test_standalone_scripts
}


def test_every_script_is_listed():
    scripts = {p.name for p in EXPERIMENTS.iterdir() if p.suffix in (".py", ".sh")}
    assert scripts == set(SCRIPTS), "add new experiment scripts to SCRIPTS with tiny arguments"


def run(script: str, args: list[str], cwd: Path) -> str:
    cmd = ["bash" if script.endswith(".sh") else sys.executable, str(EXPERIMENTS / script), *args]
    env = {**os.environ, "TRAIN_ARGS": "--preset tiny.toml", "JUDGE_ARGS": "--epochs 1",
           "EVAL_ARGS": EVAL, "MPLBACKEND": "Agg"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def workdir(tmp_path, tiny_npz):
    cfg = tiny_config()
    cfg.data.path, cfg.preset = str(tiny_npz), "tiny"
    (tmp_path / "tiny.toml").write_text(cfg.to_toml())
    return tmp_path


def test_ablation_then_probe(workdir):
    out = run("ablation.sh", SCRIPTS["ablation.sh"], workdir)
    assert "| factorized-lstm |" in out and (workdir / "out" / "ablation.md").is_file()
    assert len(list((workdir / "out").glob("*/evaluation.json"))) == 6
    out = run("probe_f.py", SCRIPTS["probe_f.py"], workdir)
    assert out.count("\n") == 4  # one line per attribute
    assert all("on draws of q(f)" in line or "no probe" in line for line in out.splitlines())
    out = run("latent_swaps.py", SCRIPTS["latent_swaps.py"], workdir).splitlines()
    assert [line.split(": ")[0] for line in out] == [
        "f ~ p(f)", "f of another clip", "z_1:T ~ p(z_1:T)", "z_1:T of another clip",
        "nothing (reconstruction)"]
    assert all(line.endswith("18 clips") for line in out)
    assert all(f"{a} " in line for line in out[2:] for a in ("body", "bottom", "top", "hair"))
    out = run("skin_tones.py", SCRIPTS["skin_tones.py"], workdir).splitlines()
    assert out[0].startswith("body 4: 9 test clips; its skin tones [(")  # one test character
    reads = [line for line in out if line.startswith("read as body ")]
    assert sum(int(line.split(" on ")[1].split()[0]) for line in reads) == 9
    if any(not line.startswith("read as body 4 ") for line in reads):  # a misreading: recoloured
        assert out[-1].startswith("real clips of body 4, all its tones as drawn where body")
    out = run("seeds_table.py", SCRIPTS["seeds_table.py"], workdir)
    assert "| factorized-lstm | 0 |" in out and "| mean ± std over 2 runs |" in out
    assert "| one Gaussian | as trained |" in out  # neither prior nor decoder refitted
    assert (workdir / "seeds.md").is_file() and (workdir / "seeds.png").stat().st_size > 1000


def test_refit_prior_samples(workdir):
    from dsae_pyro.cli import main

    assert main(["train", "--preset", str(workdir / "tiny.toml"), "--epochs", "1", "--out",
                 str(workdir / "run"), "--no-report", "--quiet"]) == 0
    shutil.copytree(workdir / "run", workdir / "refitted")
    assert main(["refit-prior", str(workdir / "refitted"), "--z-components", "3", "--epochs", "1",
                 "--quiet"]) == 0
    out = run("refit_prior_samples.py", SCRIPTS["refit_prior_samples.py"], workdir)
    assert "wrote samples.png" in out and (workdir / "samples.png").stat().st_size > 1000
    assert main(["judge", "train", "--data", "npz", "--data-path", str(workdir / "tiny.npz"),
                 "--epochs", "1", "--out", str(workdir / "judge.pt"), "--quiet"]) == 0
    out = run("refit_prior_samples.py", ["run", "refitted", "--out", "motion.png", "--test",
                                         "motion", "--clips", "1", "--judge", "judge.pt"], workdir)
    assert "wrote motion.png" in out and (workdir / "motion.png").stat().st_size > 1000


def test_push(workdir):
    out = run("push.sh", SCRIPTS["push.sh"], workdir)
    assert "| 10 |" in out and (workdir / "push" / "push_curve.png").is_file()
    assert sorted(p.name for p in (workdir / "push").glob("e*")) == ["e10", "e2", "e4", "e6", "e9"]


def test_moving_digits(workdir):
    save_npz(workdir / "digits.npz", make_moving_digits(seed=0, n_train=40, n_test=18))
    out = run("moving_digits.py", SCRIPTS["moving_digits.py"], workdir)
    assert "| test | motion | horizontal | vertical | digit | font |" in out
    assert (workdir / "digits" / "moving_digits_swap.png").is_file()
    assert sorted(p.name for p in (workdir / "digits").glob("judge*.pt")) == ["judge0.pt",
                                                                              "judge1.pt"]


def test_nolabel_curve_then_redraw(workdir):
    out = run("nolabel_curve.py", SCRIPTS["nolabel_curve.py"], workdir)
    curve = workdir / "curve"
    assert sorted(p.name for p in curve.glob("e*")) == ["e1", "e2"]
    rows = (curve / "curve.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,minutes,psnr,IS,IS_std,motion,motion_std")
    assert "body_ceiling" in rows[0] and (curve / "curve.png").is_file()
    assert (curve / "hardest.png").is_file()
    assert out.count("| 2 |") == 1 and "tiny preset, npz, training seed 0; 2 judges" in (
        curve / "curve.md").read_text()
    again = run("nolabel_curve.py", ["curve", "--redraw", "--judges", "2"], workdir)
    assert again.splitlines()[-1] == out.splitlines()[-1]  # the same last row, nothing retrained
    run("nolabel_curve.py", ["cmp", "--compare", "curve/e1", "curve/e2", "--labels", "one", "two"],
        workdir)
    assert (workdir / "cmp" / "compare.png").is_file()


@pytest.mark.parametrize("script", ["dsprites_sample.py", "frozen_channels_last.py",
                                    "betavae_sweep.py", "dsprites_factor_gain.py"])
def test_standalone_scripts(tmp_path, script):
    out = run(script, SCRIPTS[script], tmp_path)
    if script == "frozen_channels_last.py":  # the pitfall it demonstrates still holds in this Pyro
        assert "contiguous_format: conv weight changed by one SVI step: True" in out
        assert "channels_last: conv weight changed by one SVI step: False" in out
    elif script == "dsprites_factor_gain.py":  # one row per scale, then their mean
        rows = [line for line in out.splitlines() if line.startswith("| +-0 px |")]
        assert len(rows) == 7 and rows[-1].startswith("| +-0 px | mean |")
    elif script == "betavae_sweep.py":
        assert "| factorvae | 2 |" in out and (tmp_path / "sweep" / "sweep.png").is_file()
        assert len(list((tmp_path / "sweep").glob("*/evaluation.json"))) == 4
        # --no-train scores what is there, at the step each run reached, and trains nothing
        ckpt = tmp_path / "sweep" / "factorvae-seed1" / "checkpoint.pt"
        before = ckpt.stat().st_mtime_ns
        again = run(script, [*SCRIPTS[script], "--steps", "100", "--no-train"], tmp_path)
        assert "| factorvae | 2 | 4 |" in again and ckpt.stat().st_mtime_ns == before
        ckpt.unlink()  # scores and history suffice, as when only they came back from elsewhere
        assert run(script, [*SCRIPTS[script], "--no-train"], tmp_path) == again
        missing = subprocess.run([sys.executable, str(EXPERIMENTS / script), "sweep", "--objectives",
                                  "H", "--seeds", "0", "--no-train"], cwd=tmp_path,
                                 capture_output=True, text=True)
        assert missing.returncode == 2 and "H-seed0 holds neither a run" in missing.stderr
        # the five latents of least KL get fresh weights: their rows and columns, nothing else
        src = tmp_path / "sweep" / "factorvae-seed0"
        old = torch.load(src / "checkpoint.pt", weights_only=False)
        kl = old["history"][-1]["kl_per_latent"]
        below = sorted(kl)[5]
        dead = [i for i, k in enumerate(kl) if k < below]
        out = run("betavae_revive.py", [str(src), "revived", "--below", str(below)], tmp_path)
        assert f"latents {dead} given fresh weights" in out and len(dead) == 5
        old = old["model"]
        new = torch.load(tmp_path / "revived" / "checkpoint.pt", weights_only=False)["model"]
        head = max((k for k in old if k.startswith("encoder.") and k.endswith(".weight")),
                   key=lambda k: int(k.split(".")[1]))
        first = "decoder.0.weight"
        assert {k for k in old if not torch.equal(old[k], new[k])} == {head, first}
        for i in range(len(kl)):
            assert torch.equal(old[head][i], new[head][i]) == (i not in dead)
            assert torch.equal(old[first][:, i], new[first][:, i]) == (i not in dead)
        assert not (tmp_path / "revived" / "evaluation.json").exists()
    else:
        assert (tmp_path / "sample.png").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gets")
def test_profile_step_on_cpu_says_so(tmp_path):
    cmd = [sys.executable, str(EXPERIMENTS / "profile_step.py"), "--preset", "cpu"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "no CUDA device here" in done.stderr


def test_factor_gain_by_hand():
    """Two one-orientation "shapes" that differ in one pixel: knowing the scale leaves that pixel
    a fair coin (log 2 nats), knowing the shape leaves nothing."""
    spec = importlib.util.spec_from_file_location("gain", EXPERIMENTS / "dsprites_factor_gain.py")
    gain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gain)
    masks = np.zeros((2, 1, 4, 4))
    masks[:, :, 1, 1] = 1  # both on here
    masks[0, :, 2, 2] = 1  # only shape 0 here
    given_scale, given_shape, given_orientation = gain.nll_terms(masks, shift=0)
    assert given_scale == pytest.approx(np.log(2)) and given_shape == pytest.approx(0, abs=1e-9)
    assert given_orientation == pytest.approx(0, abs=1e-9)


def test_seeds_table_names_the_decoder_refit():
    spec = importlib.util.spec_from_file_location("seeds", EXPERIMENTS / "seeds_table.py")
    seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeds)
    refit = {"adopted": True, "epochs": 3, "at": "draws", "readback": 1.0}
    assert seeds.decoder_refit(None) == seeds.decoder_refit({**refit, "adopted": False}) == (
        "as trained")
    assert seeds.decoder_refit(refit) == "3 passes + 1 x read-back"
    assert seeds.decoder_refit({**refit, "likelihood": "laplace", "x_scale": 5.0}) == (
        "3 passes + 1 x read-back, laplace b=5")
    assert seeds.decoder_refit({**refit, "likelihood": "gaussian", "x_scale": 0.5}) == (
        "3 passes + 1 x read-back, gaussian std=0.5")
    assert seeds.decoder_refit({**refit, "likelihood": "bernoulli", "x_scale": 0.5}) == (
        "3 passes + 1 x read-back, bernoulli")  # which has no scale
    assert seeds.decoder_refit({**refit, "likelihood": "laplace", "x_scale": 5.0,
                                "mean_margin": 0.05}) == (
        "3 passes + 1 x read-back, laplace b=5, mean margin 0.05")


@pytest.mark.parametrize("script", sorted(s for s in SCRIPTS if s.endswith(".py")
                                          and s != "frozen_channels_last.py"))  # takes no arguments
def test_every_script_answers_help(script, tmp_path):
    """`--help` prints a usage line and does nothing else: no figure written, no data drawn."""
    out = run(script, ["--help"], tmp_path)
    assert out.startswith(f"usage: {script}") and not any(tmp_path.iterdir())
