import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import SHEETS

from dsae_pyro.cli import main

TINY = ["--set", "model.f_dim=4", "--set", "model.z_dim=3", "--set", "model.hidden=8",
        "--set", "model.conv_channels=[4,4,4,4]", "--set", "model.conv_features=[16]",
        "--set", "train.batch_size=6", "--quiet"]


def test_train_resume_swap_generate_report(tmp_path, tiny_npz, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
            "--out", str(out), *TINY]
    assert main(args) == 0
    for name in ("report.html", "swap.png", "reconstructions.png", "generate_fix_f.png",
                 "generate_fix_z.png", "loss.png", "history.csv", "checkpoint.pt"):
        assert (out / name).is_file(), name
    from PIL import Image

    with Image.open(out / "swap.gif") as gif:  # the clips of the swap grid playing, 4 to a row
        assert gif.n_frames == 8 and gif.size == (2 * (4 * 66 + 2), 2 * (4 * 66 + 2))  # make_grid
    html = (out / "report.html").read_text()
    assert "<img src='swap.gif'" in html
    assert "swap.png" in html and "generate_fix_z.png" in html
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-report",
                 "--quiet"]) == 0
    assert "epoch,train_loss" in (out / "history.csv").read_text()
    assert len((out / "history.csv").read_text().splitlines()) == 3
    assert main(["swap", str(out), "--pairs", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    assert main(["generate", str(out / "checkpoint.pt"), "--out", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g_fix_f.png").is_file() and (tmp_path / "g_fix_z.png").is_file()


@pytest.mark.parametrize("args,message", [
    (["train", "--preset", "nope"], "unknown preset 'nope': use one of"),
    (["train", "--set", "train.lrr=1"], "unknown option train.lrr; options of [train]"),
    (["train", "--set", "model.likelihood=poisson"], "model.likelihood = 'poisson' is not one"),
    (["train", "--set", "train.kl_weight=0"], "train.kl_weight must be a finite number > 0"),
    (["train", "--set", "train.epochs=1.5"], "train.epochs expects an integer"),
    (["train", "--set", "lr=1"], "not of the form section.key=value"),
    (["train", "--data", "npz"], "needs data.path"),
    (["train", "--resume", "--out", "/nonexistent/run"], "no checkpoint in /nonexistent/run"),
    (["swap", "/nonexistent/run"], "no checkpoint at"),
    (["data", "sprites", "--out", "x.npz"], "needs --sheets DIR"),
    (["data", "sprites", "--sheets", "/nonexistent", "--out", "x.npz"], "missing sprite sheet"),
])
def test_bad_input_gets_a_clear_error(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_resume_with_another_guide_is_refused(tmp_path, tiny_npz, capsys):
    out = tmp_path / "run"
    base = ["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
            "--out", str(out), "--no-report", *TINY]
    assert main(base) == 0
    assert main(base + ["--resume", "--guide", "full"]) == 2
    assert "guide: checkpoint 'factorized' vs now 'full'" in capsys.readouterr().err


def test_a_run_folder_guards_its_record(tmp_path, tiny_npz, capsys):
    """A new run never writes over a user's files; a resumed run keeps its preset; a resumed run
    on other data saved under the same file name is refused (the identity is the content)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.html").write_text("the user's page")
    base = ["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
            "--out", str(out), "--no-report", *TINY]
    assert main(base) == 2
    assert "holds report.html but no checkpoint" in capsys.readouterr().err
    assert (out / "report.html").read_text() == "the user's page"
    (out / "report.html").unlink()
    assert main(base) == 0
    assert main(["train", "--out", str(out), "--resume", "--preset", "paper"]) == 2
    assert "trained with preset 'cpu' and keeps it" in capsys.readouterr().err
    data = dict(np.load(tiny_npz))
    data["x_train"] = data["x_train"][::-1].copy()
    np.savez(tiny_npz, **data)  # other clips, same name
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 2
    assert "the checkpoint was trained on npz(sha256:" in capsys.readouterr().err


def test_presets_are_valid_and_printable(capsys):
    assert main(["presets"]) == 0
    names = capsys.readouterr().out.split()
    assert {"cpu", "paper"} <= set(names)
    assert main(["presets", "paper"]) == 0
    text = capsys.readouterr().out
    assert "conv_channels = [256, 256, 256, 256]" in text and "lr = 2e-4" in text
    assert main(["presets", "--betavae"]) == 0
    assert set(capsys.readouterr().out.split()) == {"cpu", "paper"}
    assert main(["presets", "--betavae", "paper"]) == 0
    assert "c_steps = 100000" in capsys.readouterr().out


def test_console_script_help():
    res = subprocess.run([sys.executable, "-m", "dsae_pyro.cli", "train", "--help"],
                         capture_output=True, text=True, check=True)
    assert "--preset" in res.stdout and "--resume" in res.stdout


@pytest.mark.skipif(not SHEETS.is_dir(), reason="LPC sheets (../shared) absent")
def test_data_command_builds_real_sprites(tmp_path):
    import numpy as np

    out = tmp_path / "sprites.npz"
    assert main(["data", "sprites", "--sheets", str(SHEETS), "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["x_train"].shape == (9000, 8, 64, 64, 3) and f["x_test"].shape[0] == 2664
        assert f["x_train"].dtype == np.uint8 and f["x_train"].max() > 0


def test_judge_and_evaluate_commands(tmp_path, tiny_npz, capsys):
    import json

    run = tmp_path / "run"
    data = ["--data", "npz", "--data-path", str(tiny_npz)]
    assert main(["train", *data, "--epochs", "1", "--out", str(run), "--no-report",
                 "--guide", "causal", "--prior", "improved", "--decoder", "improved",
                 "--set", "model.decoder_hidden=16", "--set", "model.decoder_channels=4",
                 *TINY]) == 0
    judge = tmp_path / "judge.pt"
    assert main(["judge", "train", *data, "--epochs", "1", "--out", str(judge), "--quiet"]) == 0
    assert "test accuracy: motion" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--judge", str(judge), "--draws", "2", "--iw-samples", "4",
                 "--iw-clips", "5"]) == 0
    assert "evaluating" in capsys.readouterr().err  # the progress bar
    scores = json.loads((run / "evaluation.json").read_text())
    assert {"motion_acc", "IS", "body_acc", "reconstruction", "bounds", "cosine",
            "f_disentanglement"} <= set(scores)
    assert 0 <= scores["f_disentanglement"]["mig"]["mig"] <= 1
    rec = scores["reconstruction"]
    assert rec["psnr"] == pytest.approx(10 * math.log10(1 / rec["mse"]))  # pixels in [0, 1]
    judged = scores["reconstruction"]["judged"]  # the judge on reconstructions, every head
    assert set(judged) == {"motion", "body", "bottom", "top", "hair"}
    assert all(0 <= v <= 1 for v in judged.values())
    (confusions,) = rec["confusions_each"]  # one judge: per head, true class x class read
    for head, rows in confusions.items():  # rows sum to the clips, the diagonal to the accuracy
        assert sum(map(sum, rows)) == len(np.load(tiny_npz)["x_test"])
        assert sum(rows[i][i] for i in range(len(rows))) / sum(map(sum, rows)) == pytest.approx(
            judged[head])
    assert scores["bounds"]["clips"] == 5
    assert scores["cosine"]["same appearance, other motion"]["pairs"] == 2 * 36  # 2 characters
    html = (run / "report.html").read_text()
    assert "evaluation.png" in html and "cosine.png" in html and (run / "cosine.png").exists()
    md = (run / "evaluation.md").read_text()  # published numbers belong to real Sprites only
    assert "published" not in md and "motion acc (%)" in md
    assert "Judge `judge.pt` (its own accuracy on the real test clips: motion" in md
    assert "The judge's most frequent misreadings of reconstructions" in md
    assert "<th>H(y|x)</th>" in html  # Markdown tables become HTML tables, escaped pipes kept
    second = tmp_path / "judge1.pt"  # two judges: one set of clips, both judges' spread shown
    assert main(["judge", "train", *data, "--epochs", "1", "--seed", "1", "--out", str(second),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--judge", str(judge), str(second), "--draws", "1",
                 "--iw-samples", "2", "--iw-clips", "2", "--quiet"]) == 0
    assert "evaluating" not in capsys.readouterr().err  # --quiet: no progress bar
    both = json.loads((run / "evaluation.json").read_text())
    assert both["motion_acc"]["judges"] == 2 and len(both["motion_acc"]["per_judge"]) == 2
    assert both["motion_acc"]["mean"] == pytest.approx(np.mean(both["motion_acc"]["per_judge"]))
    assert len(both["reconstruction"]["judged_each"]) == 2 and len(both["judges"]) == 2
    md = (run / "evaluation.md").read_text()
    assert "Judge 2: `judge1.pt`" in md and "| judge 2 |" in md
    assert "Training: objective elbo; q(f) reads the clip itself; no labels." in md
    other = tmp_path / "other.pt"
    assert main(["judge", "train", "--data", "npz", "--data-path", str(tmp_path / "x.npz"),
                 "--out", str(other), "--quiet"]) == 2  # missing file: a clear error


def test_unreadable_files_and_counts_get_one_clear_line(tmp_path, capsys):
    import torch

    empty, junk = tmp_path / "empty.npz", tmp_path / "junk.npz"
    empty.write_bytes(b"")
    junk.write_bytes(b"\x93NUMPY not really" * 50)
    for path in (empty, junk):
        assert main(["train", "--data", "npz", "--data-path", str(path), "--out",
                     str(tmp_path / "r"), "--quiet"]) == 2
        assert "is not a readable .npz file" in capsys.readouterr().err
    assert main(["betavae", "train", "--data-path", str(empty), "--out", str(tmp_path / "b"),
                 "--quiet"]) == 2
    assert "is not a readable .npz file" in capsys.readouterr().err
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "model": {}}, checkpoint)
    assert main(["evaluate", str(tmp_path), "--judge", str(junk)]) == 2
    assert "incomplete dsae_pyro checkpoint" in capsys.readouterr().err
    from dsae_pyro.metrics.judge import JudgeError, load_judge

    for judge, message in ((checkpoint, "checkpoint, not a judge"), (junk, "is not a judge file")):
        with pytest.raises(JudgeError, match=message):
            load_judge(judge)
    for args in (["swap", "RUN", "--pairs", "0"], ["generate", "RUN", "--pairs", "-2"],
                 ["evaluate", "RUN", "--judge", "J", "--draws", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_outputs_are_not_replaced_without_force(tmp_path, capsys, tiny_npz):
    """Checked before any work is done: an existing file, or a folder that cannot be written."""
    existing = tmp_path / "existing.pt"
    existing.write_text("the user's file")
    data = ["--data", "npz", "--data-path", str(tiny_npz)]
    for args in (["judge", "train", *data, "--out", str(existing), "--quiet"],
                 ["data", "synthetic", "--out", str(existing)],
                 ["bench", "--out", str(existing)]):
        assert main(args) == 2
        assert "already exists; pass --force" in capsys.readouterr().err
    assert existing.read_text() == "the user's file"
    assert main(["judge", "train", *data, "--out", str(tmp_path), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["judge", "train", *data, "--epochs", "1", "--out", str(existing), "--quiet",
                 "--force"]) == 0
    assert existing.read_bytes()[:15] != b"the user's file"


def test_any_clips_train_grayscale_32px_5_frames_no_labels(tmp_path, capsys):
    """An npz of one's own clips: (N, 5, 32, 32, 1) uint8, x only. The model takes its shape from
    the clips; figures and report are written although no clip has labels."""
    rng = np.random.default_rng(0)
    x = np.zeros((30, 5, 32, 32, 1), np.uint8)
    for i in range(30):  # a bright square of one of three sizes moving right
        side = 4 + 3 * (i % 3)
        for t in range(5):
            x[i, t, 10:10 + side, 3 + 4 * t:3 + 4 * t + side] = 200 + rng.integers(0, 50)
    np.savez(tmp_path / "mine.npz", x_train=x[:24], x_test=x[24:])
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tmp_path / "mine.npz"), "--epochs",
                 "1", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "model.frames=5, model.image_size=32, model.image_channels=1" in printed
    for name in ("report.html", "swap.png", "reconstructions.png", "generate_fix_f.png"):
        assert (out / name).is_file(), name
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-report",
                 "--quiet"]) == 0
    assert main(["evaluate", str(out), "--iw-samples", "2", "--iw-clips", "4"]) == 0
    printed = capsys.readouterr().out
    assert "Skipped (the clips carry no labels)" in printed and "ELBO" in printed
    assert "importance-weighted bound" in (out / "report.html").read_text()


def test_the_command_line_alone_and_its_flags(capsys, tmp_path, tiny_npz):
    assert main([]) == 0 and "usage: dsae" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "dsae_pyro 0." in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--lr", "5e-4", "--batch-size", "9", "--seed", "3", "--device", "cpu",
                 "--out", str(out), "--no-report", *TINY[:-3], "--quiet"]) == 0
    text = (out / "config.toml").read_text()
    assert all(s in text for s in ("lr = 0.0005", "batch_size = 9", "seed = 3", 'device = "cpu"'))
    for command in ("generate", "swap", "report"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "checkpoint" in capsys.readouterr().out
