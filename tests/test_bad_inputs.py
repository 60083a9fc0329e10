"""Hostile but fair inputs: every bad value a clear error naming it, random bytes and random TOML
never a traceback, and a checkpoint write killed halfway loses nothing."""

import math
import string

import numpy as np
import pytest
import torch
from conftest import tiny_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsae_pyro.betavae.config import BetaVAEConfig
from dsae_pyro.cli import main
from dsae_pyro.config import Config, ConfigError, load_preset
from dsae_pyro.data import DataError, load_npz
from dsae_pyro.data.dsprites import load_dsprites_npz
from dsae_pyro.runs import CHECKPOINT, load_checkpoint
from dsae_pyro.train import fit

POSITIVE = ["train.kl_weight", "model.x_scale", "train.lr", "train.temperature", "train.lr_decay"]
AT_LEAST_ONE = ["train.epochs", "train.batch_size", "train.num_particles", "model.f_dim",
                "model.z_dim", "model.hidden", "model.frames", "model.conv_kernel",
                "model.decoder_hidden", "model.decoder_channels", "model.image_channels",
                "model.image_size"]
AT_LEAST_ZERO = ["train.kl_warmup", "train.lr_decay_epochs", "train.eval_clips", "train.nce_f_weight",
                 "train.nce_z_weight", "train.mi_weight", "model.decoder_colours"]
LISTS = ["model.conv_channels", "model.conv_strides", "model.conv_features"]
CHOICES = ["model.guide", "model.prior", "model.decoder", "model.likelihood", "train.elbo",
           "train.objective", "train.f_source", "train.z_source", "data.name", "train.device",
           "model.colour_table"]


def _bad_values():
    cases = []
    for key in POSITIVE:
        cases += [(key, v) for v in ("0", "-1", "inf", "nan", "-inf")]
    for key in AT_LEAST_ONE:
        cases += [(key, v) for v in ("0", "-3")]
    for key in AT_LEAST_ZERO:
        cases += [(key, "-1")]
    for key in LISTS:
        cases += [(key, "[]"), (key, "[0, 2, 2, 2]"), (key, "[-4]"), (key, "4")]
    for key in CHOICES:
        cases += [(key, "nope"), (key, "3")]
    cases += [("train.beta1", "1.0"), ("train.beta2", "-0.1"), ("train.beta1", "nan"),
              ("model.decoder_features", "[0]"), ("model.conv_strides", "[2, 2, 2, 2, 2, 2, 2]"),
              ("model.decoder_widths", "[0, 8, 8, 8]"), ("model.decoder_widths", "[8, 8]"),
              ("model.colour_table", "global"),  # without model.decoder_colours: nothing to choose
              ("model.likelihood", "palette_mixture")]  # nor colours to mix
    return cases


@pytest.mark.parametrize("key,value", _bad_values())
def test_every_bad_dsae_setting_names_itself(key, value):
    with pytest.raises(ConfigError) as e:
        Config().override([f"{key}={value}"])
    message = str(e.value)
    assert key in message or key.split(".")[1] in message, message


@pytest.mark.parametrize("key,value", [
    ("train.beta", "0"), ("train.beta", "inf"), ("train.lr", "nan"), ("train.gamma", "-1"),
    ("train.c_max", "-1"), ("train.c_max", "inf"), ("train.steps", "0"), ("train.batch_size", "0"),
    ("train.log_every", "0"), ("train.c_steps", "0"), ("model.latents", "0"),
    ("model.arch", "resnet"), ("train.objective", "C"), ("train.device", "tpu")])
def test_every_bad_betavae_setting_names_itself(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        BetaVAEConfig().override([f"{key}={value}"])


@pytest.mark.parametrize("args,message", [
    (["judge", "train", "--epochs", "0", "--out", "j.pt"], "must be at least 1"),
    (["evaluate", "RUN", "--judge", "J", "--max-clips", "-5"], "must be at least 0"),
    (["evaluate", "RUN", "--judge", "J", "--iw-samples", "0"], "must be at least 1"),
    (["evaluate", "RUN", "--judge", "J", "--iw-clips", "x"], "is not a whole number"),
    (["swap", "RUN", "--pairs", "-2"], "must be at least 1"),
])
def test_bad_counts_stop_the_parser(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("text,message", [
    (b'preset = "x"\n[model]\nf_dim = "\xff\xfe"\n', "not valid TOML (UTF-8 text)"),
    (b"model = 5\n", "model must be a table"),
    (b"[model\n", "not valid TOML"),
    (b"[modle]\nf_dim = 3\n", "unknown section 'modle'"),
    (b"[model]\nf_dim = 'big'\n", "model.f_dim expects a value like"),
])
def test_bad_preset_files(tmp_path, text, message, capsys):
    path = tmp_path / "p.toml"
    path.write_bytes(text)
    assert main(["train", "--preset", str(path), "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_bad_data_is_refused_before_any_work(tmp_path, tiny_data, tiny_npz, capsys):
    cfg = tiny_config()
    empty = {"train": tiny_data["train"], "test": tiny_data["test"].subset(slice(0, 0))}
    with pytest.raises(DataError, match="the test split holds no clips"):
        fit(cfg, empty, tmp_path / "a", progress=False)
    cfg.model.frames = 3
    with pytest.raises(ConfigError, match=r"need model.frames=8 \(the model has 3\)"):
        fit(cfg, tiny_data, tmp_path / "b", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    data = dict(np.load(tiny_npz))
    np.savez(tmp_path / "int.npz", **{**data, "x_train": data["x_train"].astype(np.int32)})
    with pytest.raises(DataError, match="dtype int32 is not supported; give uint8"):
        load_npz(tmp_path / "int.npz")


def test_a_beta_vae_run_is_not_resumed_as_a_dsae(tmp_path, capsys):
    run = tmp_path / "b"
    assert main(["betavae", "train", "--steps", "2", "--set", "train.log_every=2",
                 "--set", "train.batch_size=4", "--out", str(run), "--no-report", "--quiet",
                 "--set", "model.arch=mlp", "--set", "model.latents=2"]) == 0
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "is a beta-VAE checkpoint, not a DSAE one" in capsys.readouterr().err
    assert main(["swap", str(run), "--out", str(tmp_path)]) == 2
    assert "beta-VAE checkpoint" in capsys.readouterr().err


def test_swap_into_a_folder_writes_inside_it(tmp_path, tiny_npz, capsys):
    from test_cli import TINY

    run = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(run), "--no-report", *TINY]) == 0
    figures = tmp_path / "figures"
    figures.mkdir()
    assert main(["swap", str(run), "--out", str(figures), "--pairs", "2"]) == 0
    assert (figures / "swap_seed0.png").is_file() and not (tmp_path / "figures.png").exists()


# --- random bytes and random text never give a traceback ------------------------------------------
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_as_a_dataset_file(tmp_path, blob):
    path = tmp_path / "random.npz"
    path.write_bytes(blob)
    with pytest.raises(DataError):
        load_npz(path)
    with pytest.raises(DataError):
        load_dsprites_npz(path)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_a_checkpoint(tmp_path, blob):
    from dsae_pyro.runs import TrainingError

    path = tmp_path / CHECKPOINT
    path.write_bytes(blob)
    with pytest.raises(TrainingError):
        load_checkpoint(path)


TOML_ATOMS = st.sampled_from(["[model]", "[train]", "[data]", "[x]", "f_dim", "lr", "guide",
                              "epochs", "conv_channels", "=", "1", "0", "-1", "1e400", "nan",
                              "'full'", '"x"', "[1, 2]", "[]", "true", "\n", " ", "{", "}", "#"])


@FUZZ
@given(st.one_of(st.lists(TOML_ATOMS, max_size=30).map(" ".join),
                 st.text(string.printable, max_size=200)))
def test_random_toml_is_a_config_error_or_a_valid_config(tmp_path, text):
    path = tmp_path / "random.toml"
    path.write_text(text)
    try:
        cfg = load_preset(str(path))
    except ConfigError:
        return
    assert cfg.train.lr > 0 and math.isfinite(cfg.train.lr) and cfg.model.f_dim >= 1


@FUZZ
@given(st.text(max_size=60))
def test_random_overrides_are_config_errors_or_applied(text):
    try:
        Config().override([text])
    except ConfigError:
        pass


# --- a checkpoint write killed halfway -------------------------------------------------------------
def test_a_checkpoint_write_killed_halfway_loses_nothing(tmp_path, tiny_data, monkeypatch):
    """torch.save dies after writing part of epoch 2's checkpoint: epoch 1's stays whole, and the
    resumed run ends bit-identical to one that never stopped, with its whole history."""
    cfg = tiny_config()
    straight = fit(cfg, tiny_data, tmp_path / "a", progress=False)

    real_save = torch.save

    def dies_in_epoch_2(obj, fh, *a, **k):
        if obj["epoch"] == 2:
            fh.write(b"half a checkpoint")
            raise KeyboardInterrupt  # the kill
        real_save(obj, fh, *a, **k)

    monkeypatch.setattr(torch, "save", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(), tiny_data, tmp_path / "b", progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(tmp_path / "b")["epoch"] == 1
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.endswith(".tmp")]
    resumed = fit(tiny_config(), tiny_data, tmp_path / "b", resume=True, progress=False)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
