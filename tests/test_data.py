import functools
import http.server
import shutil
import threading

import numpy as np
import pytest
import torch
from conftest import SHEETS, tiny_split
from PIL import Image

from dsae_pyro.data import DataError, check_clips, load_npz, save_npz, to_tensor
from dsae_pyro.data.labels import character_index, split_characters
from dsae_pyro.data.sprites import SheetError, build_sprites, download_sheets, verify_sheets
from dsae_pyro.data.synthetic import make_synthetic

needs_sheets = pytest.mark.skipif(not SHEETS.is_dir(), reason="LPC sheets (../shared) absent")


def test_split_is_li_and_mandt():
    train, test = split_characters()
    assert len(train) == 1000 and len(test) == 296
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1296))
    assert np.array_equal(train[:3], np.random.RandomState(423).permutation(1296)[:3])
    assert character_index([1, 2, 3, 4]) == 216 + 72 + 18 + 4


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic()


def test_synthetic_full_dataset(synthetic):
    tr, te = synthetic["train"], synthetic["test"]
    assert tr.x.shape == (9000, 8, 64, 64, 3) and te.x.shape == (2664, 8, 64, 64, 3)
    assert tr.x.dtype == np.uint8
    assert set(np.unique(tr.character)).isdisjoint(np.unique(te.character))
    assert np.array_equal(character_index(tr.attributes), tr.character)
    assert np.array_equal(np.bincount(tr.motion), np.full(9, 1000))
    again = make_synthetic()
    assert np.array_equal(again["test"].x[:50], te.x[:50])  # deterministic from the seed
    assert not np.array_equal(split_characters(1)[1], np.unique(te.character))


def test_synthetic_appearance_and_motion_are_shapes_not_just_colours():
    one = tiny_split([0, 1, 6, 36, 216])  # hair, top, bottom, body changed one at a time
    x = one.x.reshape(5, 9, 8, 64, 64, 3)
    occupied = (x.max(-1) > 0)  # silhouettes, colour removed
    for k in range(1, 5):  # each attribute changes the silhouette somewhere
        assert (occupied[0] != occupied[k]).any(axis=(1, 2, 3)).all()
    for m in range(1, 9):  # each motion moves pixels; frames of a clip differ
        assert (occupied[0, 0] != occupied[0, m]).any()
    for m in range(9):  # and within a clip the pose changes: at least 3 distinct silhouettes
        assert len({occupied[0, m, t].tobytes() for t in range(8)}) >= 3


def test_to_tensor_layout():
    s = tiny_split([5])
    t = to_tensor(s.x[:2])
    assert t.shape == (2, 8, 3, 64, 64) and t.dtype == torch.float32
    assert torch.equal(t[1, 3, 2] * 255, torch.as_tensor(s.x[1, 3, :, :, 2]).float())
    assert 0 <= float(t.min()) and float(t.max()) <= 1


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 8, 64, 64, 3), np.float32), "channel-last"),
    (np.zeros((2, 8, 3, 30, 30), np.float32), "expected float clips of shape"),
    (np.zeros((2, 8, 2, 32, 32), np.float32), "2 channels"),
    (np.zeros((2, 1, 3, 32, 32), np.float32), "at least 2"),
    (np.zeros((2, 8, 32, 48, 3), np.uint8), "square"),
    (np.zeros((2, 8, 3, 64, 64), np.int32), "dtype int32"),
    (np.zeros((2, 8, 64, 64, 3), np.int32), r"dtype int32 is not supported; give uint8 pixels"),
    (np.full((2, 8, 3, 64, 64), 200.0, np.float32), "divide by 255"),
    (np.full((1, 8, 3, 64, 64), np.nan, np.float32), "NaN"),
    (np.zeros((2, 8, 3, 64, 64), np.uint8), "uint8 clips must be"),
])
def test_bad_clips_are_named(bad, match):
    with pytest.raises(DataError, match=match):
        check_clips(bad)


def test_npz_round_trip_and_bad_files(tmp_path):
    data = {"train": tiny_split([3]), "test": tiny_split([4])}
    save_npz(tmp_path / "d.npz", data)
    back = load_npz(tmp_path / "d.npz")
    assert np.array_equal(back["train"].x, data["train"].x)
    assert np.array_equal(back["test"].motion, data["test"].motion)
    np.savez(tmp_path / "nan.npz", x_train=np.full((1, 8, 3, 64, 64), np.nan, np.float32),
             x_test=np.zeros((1, 8, 3, 64, 64), np.float32))
    with pytest.raises(DataError, match="x_train: contains .* NaN"):
        load_npz(tmp_path / "nan.npz")
    np.savez(tmp_path / "nox.npz", x_train=data["train"].x)
    with pytest.raises(DataError, match="no array x_test"):
        load_npz(tmp_path / "nox.npz")
    with pytest.raises(DataError, match="no dataset file"):
        load_npz(tmp_path / "missing.npz")


def _recipe_cell(folder, character, row, col):
    """Li & Mandt's recipe (YingzhenLi/Sprites), written out independently of the builder."""
    b, lo, tp, hr = np.unravel_index(character, (6, 6, 6, 6))
    im = Image.new("RGBA", (832, 1344), (0, 0, 0, 255))
    for name in (f"body/{b}", f"bottomwear/{lo}", f"topwear/{tp}", f"hair/{hr}", "shoes/1"):
        im = Image.alpha_composite(im, Image.open(folder / f"{name}.png").convert("RGBA"))
    return np.asarray(im)[row * 64:(row + 1) * 64, col * 64:(col + 1) * 64, :3]


@needs_sheets
def test_sprites_builder_frames_labels_and_split():
    train_chars, test_chars = split_characters()
    chars = [int(train_chars[0]), int(test_chars[5])]
    data = build_sprites(SHEETS, characters=chars)
    tr, te = data["train"], data["test"]
    assert len(tr) == 9 and len(te) == 9
    assert (tr.character == chars[0]).all() and (te.character == chars[1]).all()
    assert np.array_equal(tr.attributes[0], np.unravel_index(chars[0], (6, 6, 6, 6)))
    assert np.array_equal(tr.motion, np.arange(9))
    # motion 1 = walk-left: row 9, frames from columns [8, 1, ..., 7]
    for t, col in enumerate([8, 1, 2, 3, 4, 5, 6, 7]):
        assert np.array_equal(tr.x[1, t], _recipe_cell(SHEETS, chars[0], 9, col))
    # motion 5 = spellcast-right: row 3, columns [0, 1, 2, 3, 4, 5, 4, 6]
    assert np.array_equal(te.x[5, 7], _recipe_cell(SHEETS, chars[1], 3, 6))
    # motion 6 = slash-front: row 14, last frame back at column 0
    assert np.array_equal(te.x[6, 7], _recipe_cell(SHEETS, chars[1], 14, 0))
    assert np.array_equal(te.x[6, 6], te.x[6, 4])


@needs_sheets
def test_sheet_errors(tmp_path):
    folder = tmp_path / "sheets"
    shutil.copytree(SHEETS, folder)
    verify_sheets(folder)
    (folder / "hair" / "3.png").write_bytes((folder / "hair" / "4.png").read_bytes())
    with pytest.raises(SheetError, match="checksum mismatch for .*hair/3.png"):
        verify_sheets(folder)
    Image.new("RGBA", (64, 64)).save(folder / "hair" / "3.png")
    with pytest.raises(SheetError, match="is 64x64, expected 832x1344"):
        verify_sheets(folder)
    (folder / "hair" / "3.png").unlink()
    with pytest.raises(SheetError, match="missing sprite sheet .*hair/3.png"):
        build_sprites(folder, characters=[0])


@needs_sheets
def test_download_from_local_http_server(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SHEETS))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        folder = download_sheets(tmp_path / "dl", base_url=base)
        assert (folder / "shoes" / "1.png").read_bytes() == (SHEETS / "shoes/1.png").read_bytes()
        with pytest.raises(SheetError, match="could not download"):
            download_sheets(tmp_path / "bad", base_url=base + "nowhere/")
    finally:
        server.shutdown()


def test_model_and_guide_name_bad_batches():
    from conftest import tiny_config

    from dsae_pyro.guides import make_guide
    from dsae_pyro.model import DSAE

    cfg = tiny_config()
    for fn in (DSAE(cfg.model).model, make_guide(cfg.model)):
        with pytest.raises(DataError, match="channel|float tensor"):
            fn(torch.rand(2, 8, 64, 64, 3))
        with pytest.raises(DataError, match="torch.uint8"):
            fn(torch.zeros(2, 8, 3, 64, 64, dtype=torch.uint8))


def test_original_npy_layout(tmp_path):
    from dsae_pyro.data.labels import ACTIONS, DIRECTIONS
    from dsae_pyro.data.sprites import load_npy_layout

    source = {"train": tiny_split([7, 300]), "test": tiny_split([1200])}
    for split, s in source.items():
        for a, action in enumerate(ACTIONS):
            for d, direction in enumerate(DIRECTIONS):
                sel = s.motion == 3 * a + d
                frames = s.x[sel].astype(np.float32) / 256  # the original float layout
                onehot = np.eye(6)[s.attributes[sel]][:, None].repeat(8, axis=1)  # (N, 8, 4, 6)
                np.save(tmp_path / f"{action}_{direction}_frames_{split}.npy", frames)
                np.save(tmp_path / f"{action}_{direction}_attributes_{split}.npy", onehot)
    data = load_npy_layout(tmp_path)
    for split, s in source.items():
        got = data[split]
        order = np.lexsort((got.character, got.motion))
        want = np.lexsort((s.character, s.motion))
        assert np.array_equal(got.x[order], s.x[want])
        assert np.array_equal(got.attributes[order], s.attributes[want])
        assert np.array_equal(got.character[order], s.character[want])
    (tmp_path / "walk_left_attributes_test.npy").unlink()
    with pytest.raises(SheetError, match="missing .*walk_left_attributes_test.npy"):
        load_npy_layout(tmp_path)


def test_other_clips_stay_within_the_character():
    from dsae_pyro.data.views import other_clips

    character = np.array([5, 2, 5, 5, 2, 9])
    rng = np.random.default_rng(0)
    draws = np.stack([other_clips(character, rng) for _ in range(600)])
    assert (character[draws] == character).all()
    assert (draws[:, :5] != np.arange(5)).all() and (draws[:, 5] == 5).all()  # 9 is alone
    # clip 0's partners (2 and 3) are drawn about equally often
    assert abs((draws[:, 0] == 2).mean() - 0.5) < 0.1


def test_synthetic_skin_is_visible_under_every_haircut():
    """The body label must be observable: with trousers and a long-sleeved top the face is the
    only skin, and no haircut may cover it (version 1's long hair did, in front view)."""
    from dsae_pyro.data.synthetic import _LAYERS, render

    skin = _LAYERS[0][1][:, 1]  # main colour of each body value
    for hair in range(6):
        attrs = np.array([[body, 0, 0, hair] for body in range(6)])
        for motion in range(9):
            x = render(attrs, np.full(6, motion))[:, 0]  # first frame
            visible = (x == skin[:, None, None, :]).all(-1).sum(axis=(1, 2))
            assert (visible >= 5).all(), (hair, motion, visible)  # version 1: 0


def test_recolour_permutes_and_scales_each_clips_channels():
    from dsae_pyro.data.views import recolour

    x = torch.rand(64, 2, 3, 4, 4) * 0.5  # below 1/1.4: no clipping
    y = recolour(x, torch.Generator().manual_seed(0))
    for i in range(len(x)):
        gains = []
        for c in range(3):  # output channel c is a gain times some input channel, in every frame
            ratios = {src: y[i, :, c] / x[i, :, src] for src in range(3)}
            src = next(s for s, r in ratios.items() if torch.allclose(r, r.flatten()[0]))
            gains.append((src, float(ratios[src].flatten()[0])))
        assert sorted(s for s, _ in gains) == [0, 1, 2]  # a permutation ...
        assert [s for s, _ in gains] != [0, 1, 2]  # ... never the identity
        assert all(0.6 <= g <= 1.4 for _, g in gains)


def test_atomic_write_leaves_a_running_writers_temporary_alone(tmp_path):
    """Two commands building the same cache at once (a judge and a training run started side by
    side): the second must not delete the first's half-written temporary, only those of writers
    that are gone (killed mid-write)."""
    import subprocess
    import sys

    from dsae_pyro._io import atomic_write

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        running = tmp_path / f".cache.npz.{alive.pid}.abc.npz"
        killed = tmp_path / f".cache.npz.{dead.pid}.def.npz"
        legacy = tmp_path / ".cache.npz.ghi.npz"  # named before temporaries carried a pid
        for f in (running, killed, legacy):
            f.write_bytes(b"half")
        atomic_write(tmp_path / "cache.npz", lambda fh: fh.write(b"done"), suffix=".npz")
        assert (tmp_path / "cache.npz").read_bytes() == b"done"
        assert running.exists() and not killed.exists() and not legacy.exists()
    finally:
        alive.kill()
        alive.wait()
