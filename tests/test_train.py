import numpy as np
import pytest
import torch
from conftest import tiny_config

from dsae_pyro.runs import CHECKPOINT, load_checkpoint
from dsae_pyro.train import Run, TrainingError, fit, load_run


def params(run):
    return {**{f"m.{k}": v for k, v in run.model.state_dict().items()},
            **{f"g.{k}": v for k, v in run.guide.state_dict().items()}}


@pytest.mark.parametrize("train", [{}, {"f_source": "sibling", "z_source": "recolour",
                                    "kl_warmup": 20}])
def test_resume_ends_with_identical_parameters(tmp_path, tiny_data, train):
    """Also with the sibling clips q(f) reads and a KL warm-up that spans the stop."""
    cfg = tiny_config()
    vars(cfg.train).update(train)
    cfg.train.epochs = 3
    straight = fit(cfg, tiny_data, tmp_path / "a", progress=False)

    cfg2 = tiny_config()
    vars(cfg2.train).update(train)
    cfg2.train.epochs = 1
    fit(cfg2, tiny_data, tmp_path / "b", progress=False)  # "dies" after epoch 1
    cfg2.train.epochs = 3
    resumed = fit(cfg2, tiny_data, tmp_path / "b", resume=True, progress=False)

    assert resumed.epoch == straight.epoch == 3
    a, b = params(straight), params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in
                                                           resumed.history]
    for name in ("history.csv", "history.json", "config.toml", CHECKPOINT):
        assert (tmp_path / "b" / name).is_file()


def test_the_last_epochs_run_at_the_decayed_rate_resumed_or_not(tmp_path, tiny_data):
    """train.lr_decay_epochs: the last epochs of train.epochs run at lr * lr_decay, every
    parameter's optimiser included, also the ones a resumed run makes from its checkpoint at the
    first step of a decayed epoch (Pyro would restore the saved rate there)."""
    def config(epochs, decay_epochs):
        cfg = tiny_config()
        cfg.train.epochs, cfg.train.lr_decay_epochs, cfg.train.lr_decay = epochs, decay_epochs, 0.2
        return cfg

    cfg = config(10, 3)
    run = Run.create(cfg)
    assert [run.lr(e) for e in range(10)] == [cfg.train.lr] * 7 + [cfg.train.lr * 0.2] * 3
    straight = fit(config(3, 1), tiny_data, tmp_path / "a", progress=False)
    rates = [g["lr"] for o in straight.svi.optim.optim_objs.values() for g in o.param_groups]
    assert rates and rates == pytest.approx([0.2 * cfg.train.lr] * len(rates))
    fit(config(2, 0), tiny_data, tmp_path / "b", progress=False)  # stops before the decay
    resumed = fit(config(3, 1), tiny_data, tmp_path / "b", resume=True, progress=False)
    undecayed = fit(config(3, 0), tiny_data, tmp_path / "c", progress=False)
    a, b, c = params(straight), params(resumed), params(undecayed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_refuses_to_overwrite_and_to_resume_another_network(tmp_path, tiny_data):
    cfg = tiny_config()
    cfg.train.epochs = 1
    fit(cfg, tiny_data, tmp_path, progress=False)
    with pytest.raises(TrainingError, match="--resume"):
        fit(cfg, tiny_data, tmp_path, progress=False)
    other = tiny_config(guide="full")
    with pytest.raises(TrainingError, match="guide: checkpoint 'factorized' vs now 'full'"):
        fit(other, tiny_data, tmp_path, resume=True, progress=False)
    bigger = tiny_config(f_dim=8)
    with pytest.raises(TrainingError, match="f_dim"):
        fit(bigger, tiny_data, tmp_path, resume=True, progress=False)
    sharper = tiny_config(x_scale=0.05)  # the likelihood's scale shapes no network: allowed
    sharper.train.epochs, sharper.train.lr = 2, 5e-4  # and the new learning rate is used
    run = fit(sharper, tiny_data, tmp_path, resume=True, progress=False)
    assert run.epoch == 2 and load_run(tmp_path).cfg.model.x_scale == 0.05
    lrs = {g["lr"] for o in run.svi.optim.optim_objs.values() for g in o.param_groups}
    assert lrs == {5e-4}
    cfg.data.path = "other.npz"
    with pytest.raises(TrainingError, match="trained on npz\\(tiny.npz\\)"):
        fit(cfg, tiny_data, tmp_path, resume=True, progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_data, monkeypatch):
    cfg = tiny_config()
    cfg.train.epochs = 1
    fit(cfg, tiny_data, tmp_path, progress=False)
    good = load_checkpoint(tmp_path)
    import pyro.infer

    monkeypatch.setattr(pyro.infer.SVI, "step", lambda self, *a, **k: float("nan"))
    cfg.train.epochs = 2
    with pytest.raises(TrainingError, match="loss became nan in epoch 2"):
        fit(cfg, tiny_data, tmp_path, resume=True, progress=False)
    kept = load_checkpoint(tmp_path)
    assert kept["epoch"] == 1
    assert torch.equal(kept["model"]["decoder.fc.0.weight"], good["model"]["decoder.fc.0.weight"])


def test_checkpoint_loads_and_generates(tmp_path, tiny_data):
    cfg = tiny_config(guide="full")
    cfg.train.epochs = 1
    run = fit(cfg, tiny_data, tmp_path, progress=False)
    loaded = load_run(tmp_path / CHECKPOINT, torch.device("cpu"))
    assert loaded.cfg.model.guide == "full" and loaded.epoch == 1
    for k, v in run.guide.state_dict().items():
        assert torch.equal(v, loaded.guide.state_dict()[k])
    assert loaded.model.model(batch_size=2).shape == (2, 8, 3, 64, 64)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="not a dsae_pyro checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(TrainingError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_sibling_f_source_trains_and_needs_characters(tmp_path, tiny_data):
    from dsae_pyro.config import ConfigError

    cfg = tiny_config()
    cfg.train.f_source = "sibling"
    cfg.train.epochs = 1
    run = fit(cfg, tiny_data, tmp_path / "a", progress=False)
    assert run.history[0]["train_loss"] > 0
    alone = {k: v.subset(slice(None)) for k, v in tiny_data.items()}
    alone["train"].character = np.arange(len(alone["train"]))  # one clip per character
    with pytest.raises(ConfigError, match="several clips per character"):
        fit(cfg, alone, tmp_path / "b", progress=False)


def test_kl_warmup_rises_linearly_to_the_weight():
    cfg = tiny_config()
    cfg.train.kl_weight, cfg.train.kl_warmup = 2.0, 4
    run = Run.create(cfg)
    assert [run.kl_weight(s) for s in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    cfg.train.kl_warmup = 0
    assert run.kl_weight(0) == 2.0



def test_resume_repairs_a_torn_history_and_stale_temporaries(tmp_path, tiny_data):
    """A kill mid-write leaves a 0-byte history.json and a temporary file: resuming rewrites the
    history from the checkpoint and removes the temporary."""
    import json

    cfg = tiny_config()
    cfg.train.epochs = 1
    fit(cfg, tiny_data, tmp_path, progress=False)
    (tmp_path / "history.json").write_text("")
    (tmp_path / "history.csv").write_text("epoch\n")
    stale = tmp_path / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"torn")
    cfg.train.epochs = 2
    fit(cfg, tiny_data, tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())] == [1, 2]
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 3
    assert not stale.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_resume_sets_aside_the_evaluation_of_the_epoch_it_continues(tmp_path, tiny_data):
    """An evaluation of epoch 1 no longer describes a run trained on to epoch 2: it is kept as
    evaluation_e1.* (cosine.png too: q moves). A resume with nothing to train leaves it where it
    is."""
    cfg = tiny_config()
    cfg.train.epochs = 1
    fit(cfg, tiny_data, tmp_path, progress=False)
    names = ("evaluation.json", "evaluation.md", "evaluation.png", "cosine.png")
    for name in names:
        (tmp_path / name).write_text(f"epoch 1 {name}")
    fit(cfg, tiny_data, tmp_path, resume=True, progress=False)
    assert all((tmp_path / name).exists() for name in names)
    cfg.train.epochs = 2
    fit(cfg, tiny_data, tmp_path, resume=True, progress=False)
    for name in names:
        stem, ext = name.split(".")
        assert not (tmp_path / name).exists()
        assert (tmp_path / f"{stem}_e1.{ext}").read_text() == f"epoch 1 {name}"


def test_history_csv_takes_every_column(tmp_path):
    from dsae_pyro.runs import write_history

    write_history(tmp_path, [{"epoch": 1, "test_loss": 2.0}, {"epoch": 2, "test_loss": 1.0,
                                                             "test_kl_f": 0.5}])
    assert (tmp_path / "history.csv").read_text().splitlines() == [
        "epoch,test_loss,test_kl_f", "1,2.0,", "2,1.0,0.5"]


def test_resume_with_fewer_epochs_keeps_the_record(tmp_path, tiny_data):
    cfg = tiny_config()
    cfg.train.epochs = 2
    fit(cfg, tiny_data, tmp_path, progress=False)
    cfg.train.epochs = 1
    with pytest.warns(UserWarning, match="already holds 2 epochs"):
        run = fit(cfg, tiny_data, tmp_path, resume=True, progress=False)
    assert run.epoch == 2 and "epochs = 2" in (tmp_path / "config.toml").read_text()


def test_tensorboard_logs_steps_and_epochs(tmp_path, tiny_data, monkeypatch):
    """Per-step loss and per-epoch test terms and grids land in RUN/tensorboard; without the
    package the run stops at once with the install line."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config()
    cfg.train.tensorboard, cfg.train.epochs = True, 1
    fit(cfg, tiny_data, tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = events.Tags()
    assert {"train/loss_per_clip", "train/clips_per_s", "test/loss", "test/kl_f",
            "test/kl_z", "test/recon"} <= set(tags["scalars"])
    assert len(events.Scalars("train/loss_per_clip")) == 6  # 36 clips in batches of 6
    assert {"reconstructions", "swap"} <= set(tags["images"])

    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    from dsae_pyro.livelog import TensorBoardError

    with pytest.raises(TensorBoardError, match=r"pip install 'dsae_pyro\[tensorboard\]'"):
        fit(cfg, tiny_data, tmp_path / "other", progress=False)


def test_keep_holds_the_last_epochs_checkpoints(tmp_path, tiny_data):
    cfg = tiny_config()
    cfg.train.epochs, cfg.train.keep = 4, 2
    fit(cfg, tiny_data, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.glob("checkpoint*.pt")) == [
        "checkpoint.pt", "checkpoint_e2.pt", "checkpoint_e3.pt"]
    assert load_checkpoint(tmp_path / "checkpoint_e3.pt")["epoch"] == 3
    assert load_checkpoint(tmp_path)["epoch"] == 4


def test_commonest_colours_by_hand():
    """Counted on every clip: 5 black pixels, 3 white, 1 red; with k above the 3 colours there are,
    the table repeats rows rather than inventing colours."""
    from dsae_pyro.clips import commonest_colours

    pixels = [(0, 0, 0)] * 5 + [(255, 255, 255)] * 3 + [(255, 0, 0)]
    clips = np.array(pixels, dtype=np.uint8).reshape(1, 1, 3, 3, 3)
    top = commonest_colours(clips, 2, every=1)
    assert top.tolist() == [[0, 0, 0], [1, 1, 1]]
    assert {tuple(c) for c in commonest_colours(clips, 5, every=1).tolist()} == {
        (0, 0, 0), (1, 1, 1), (1, 0, 0)}


def test_a_new_run_starts_the_global_palette_at_the_data_colours(tmp_path, tiny_data):
    """model.colour_table = "global": fit starts the palette at the training clips' commonest
    colours (at a rate too small to move it, what training starts from), and a resumed run keeps
    its own trained palette."""
    from dsae_pyro.clips import commonest_colours

    cfg = tiny_config(decoder_colours=4, colour_table="global")
    cfg.train.epochs, cfg.train.lr = 1, 1e-12
    run = fit(cfg, tiny_data, tmp_path / "a", progress=False)
    want = commonest_colours(tiny_data["train"].x, 4)
    got = run.model.decoder.colour_table(torch.zeros(1, cfg.model.f_dim))[0]
    assert torch.allclose(got, want.clamp(1e-3, 1 - 1e-3), atol=1e-5)
    cfg.train.lr = 0.3  # a palette that training moved
    trained = fit(cfg, tiny_data, tmp_path / "b", progress=False).model.decoder.palette.detach()
    assert not torch.allclose(trained, run.model.decoder.palette)
    resumed = fit(cfg, tiny_data, tmp_path / "b", resume=True, progress=False)
    assert torch.equal(resumed.model.decoder.palette.detach(), trained)
