"""Moving digits: the drawing against its labels, the label schema on disk, and the judge and the
protocol on a dataset that is not Sprites."""

import struct

import numpy as np
import pytest
import torch

from dsae_pyro.data import SPRITES, DataError, Split, load_npz, save_npz
from dsae_pyro.data.digits import (
    FONTS,
    FRAMES,
    MNIST_SCHEMA,
    SCHEMA,
    SIZE,
    SPEED,
    font_glyphs,
    make_moving_digits,
)
from dsae_pyro.metrics.judge import load_judge, save_judge, train_judge
from dsae_pyro.metrics.protocol import judge_generated, markdown_table


@pytest.fixture(scope="module")
def digits():
    return make_moving_digits(seed=5, n_train=300, n_test=90)


def centre_of_mass(frames):
    """(N, T, H, W, 1) -> (N, T, 2) ink-weighted (row, col)."""
    w = frames[..., 0].astype(np.float64)
    rows, cols = np.arange(SIZE)[:, None], np.arange(SIZE)[None, :]
    total = w.sum((2, 3))
    return np.stack([(w * rows).sum((2, 3)) / total, (w * cols).sum((2, 3)) / total], -1)


def test_shapes_labels_and_determinism(digits):
    tr, te = digits["train"], digits["test"]
    assert tr.x.shape == (300, FRAMES, SIZE, SIZE, 1) and tr.x.dtype == np.uint8
    assert tr.schema == SCHEMA and SCHEMA.heads == {"motion": 9, "digit": 10, "font": len(FONTS)}
    assert np.array_equal(tr.character, tr.attributes[:, 0] * len(FONTS) + tr.attributes[:, 1])
    assert set(np.unique(tr.motion)) == set(range(9)) and set(np.unique(te.attributes[:, 0])) == set(
        range(10))
    again = make_moving_digits(seed=5, n_train=300, n_test=90)
    assert np.array_equal(again["train"].x, tr.x)
    assert not np.array_equal(make_moving_digits(seed=6, n_train=300, n_test=90)["train"].x, tr.x)


def test_motion_label_is_the_ink_displacement(digits):
    """The centre of the ink moves SPEED pixels a frame along each axis the label names (columns:
    left/still/right, rows: up/still/down), and stays inside the frame."""
    split = digits["train"]
    com = centre_of_mass(split.x)
    step = np.diff(com, axis=1)  # (N, T-1, 2)
    parts = split.schema.part_labels(split.motion)
    expected = SPEED * np.stack([parts["vertical"] - 1, parts["horizontal"] - 1], -1)
    assert np.allclose(step, expected[:, None, :], atol=1e-6)
    assert np.all(split.x[:, :, 0].max((1, 2, 3)) >= 0)  # no ink lost: same total every frame
    ink = split.x.astype(np.int64).sum((2, 3, 4))
    assert np.all(ink == ink[:, :1])


def test_the_digit_is_the_static_part(digits):
    """Every frame holds the glyph of the clip's (digit, font), whole, wherever it is."""
    glyphs = np.round(font_glyphs() * 255).astype(np.uint8)
    split = digits["test"]
    for i in range(0, len(split), 7):
        g = glyphs[split.attributes[i, 1], split.attributes[i, 0]]
        for t in (0, FRAMES - 1):
            frame = split.x[i, t, :, :, 0]
            rows, cols = np.nonzero(frame)
            r0 = rows.min() - np.nonzero(g.any(1))[0][0]
            c0 = cols.min() - np.nonzero(g.any(0))[0][0]
            assert np.array_equal(frame[r0:r0 + len(g), c0:c0 + len(g)], g)


def test_glyphs_tell_every_digit_and_font_apart():
    g = font_glyphs().reshape(-1, font_glyphs().shape[-1] ** 2)
    distance = np.abs(g[:, None] - g[None]).sum(-1)
    assert distance[~np.eye(len(g), dtype=bool)].min() > 3  # at least a few pixels' worth of ink


def test_schema_round_trips_through_npz(tmp_path, digits):
    save_npz(tmp_path / "d.npz", digits)
    back = load_npz(tmp_path / "d.npz")
    assert back["test"].schema == SCHEMA
    assert np.array_equal(back["test"].character, digits["test"].character)
    # an npz without a schema is Sprites-labelled (files written before schemas existed)
    np.savez(tmp_path / "old.npz", x_train=digits["train"].x, x_test=digits["test"].x)
    assert load_npz(tmp_path / "old.npz")["train"].schema == SPRITES
    arrays = dict(np.load(tmp_path / "d.npz"))
    arrays["schema"] = np.array('{"parts": 3}')
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match="not a label schema"):
        load_npz(tmp_path / "bad.npz")
    arrays["schema"] = np.array(MNIST_SCHEMA.to_json())  # one attribute, but two columns stored
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match="attributes has shape"):
        load_npz(tmp_path / "bad.npz")


def test_judge_and_protocol_follow_the_schema(tmp_path, digits):
    judge, acc = train_judge(digits, epochs=1, progress=False)
    assert set(acc) == {"motion", "digit", "font"}
    assert judge.encoder.conv[0].in_channels == 1
    save_judge(tmp_path / "j.pt", judge, "digits-test", acc)
    loaded, state = load_judge(tmp_path / "j.pt", "digits-test")
    assert loaded.schema == SCHEMA
    test = digits["test"]
    x = torch.rand(4, FRAMES, 1, SIZE, SIZE)
    assert torch.equal(loaded.predict(x)["font"], judge.predict(x)["font"])

    # an oracle that reads the labels back scores 100% on every head and every motion part;
    # one that is always wrong about the vertical part keeps the horizontal part right
    index = {test.x[i].tobytes(): i for i in range(len(test))}

    def rows(clips):
        return [index[(c.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy().tobytes()]
                for c in clips]

    def oracle(clips, flip=False):
        i = rows(clips)
        motion = test.motion[i]
        if flip:
            parts = test.schema.part_labels(motion)
            motion = parts["horizontal"] * 3 + (parts["vertical"] + 1) % 3
        return {"motion": torch.eye(9)[motion], "digit": torch.eye(10)[test.attributes[i, 0]],
                "font": torch.eye(3)[test.attributes[i, 1]]}

    same = judge_generated(oracle, lambda x: (x, x), test, draws=1)
    assert all(same[k]["mean"] == 1 for k in ("motion_acc", "horizontal_acc", "vertical_acc",
                                               "digit_acc", "font_acc"))
    table = markdown_table(same, SCHEMA, published=False)
    assert "horizontal acc (%)" in table and "| digit | font |" in table and "±" not in table
    flipped = judge_generated(lambda c: oracle(c, flip=True), lambda x: (x, x), test, draws=2)
    assert flipped["horizontal_acc"]["mean"] == 1 and flipped["vertical_acc"]["mean"] == 0
    assert flipped["motion_acc"]["mean"] == 0 and "±" in markdown_table(flipped, SCHEMA, published=False)


def _write_idx(path, array, magic):
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def test_mnist_digits_from_torchvision_files(tmp_path):
    """torchvision's MNIST files (here 30 tiny fakes, each digit a filled square of its own
    size) give clips whose only static attribute is the digit."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 30), ("t10k", 20)):
        labels = np.arange(n) % 10
        images = np.zeros((n, 28, 28), np.uint8)
        for i, d in enumerate(labels):
            images[i, 4:6 + 2 * d, 4:6 + 2 * d] = 255
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 2049)
    data = make_moving_digits(seed=0, n_train=12, n_test=8, mnist=tmp_path)
    tr = data["train"]
    assert tr.schema == MNIST_SCHEMA and tr.attributes.shape == (12, 1)
    assert tr.x.shape == (12, FRAMES, SIZE, SIZE, 1)
    ink = tr.x[:, 0].astype(np.int64).sum((1, 2, 3))  # a bigger digit label, a bigger square
    order = np.argsort(tr.attributes[:, 0], kind="stable")
    assert np.all(np.diff(ink[order]) >= 0) and ink.min() > 0
    with pytest.raises(DataError, match="no MNIST under"):
        make_moving_digits(mnist=tmp_path / "nowhere")


def test_split_default_schema_is_sprites():
    s = Split(x=np.zeros((1, 2, 16, 16, 3), np.uint8), attributes=np.zeros((1, 4), np.int64),
              motion=np.zeros(1, np.int64), character=np.zeros(1, np.int64))
    assert s.schema == SPRITES and s.subset([0]).schema == SPRITES


def test_data_command_writes_digits(tmp_path, capsys):
    from dsae_pyro.cli import main

    out = tmp_path / "digits.npz"
    assert main(["data", "digits", "--out", str(out), "--seed", "3"]) == 0
    assert "6000 train / 1200 test clips" in capsys.readouterr().out
    data = load_npz(out)
    assert data["train"].schema == SCHEMA and data["test"].x.shape == (1200, FRAMES, SIZE, SIZE, 1)
    assert np.array_equal(data["test"].x, make_moving_digits(seed=3)["test"].x)
