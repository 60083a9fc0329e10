import os
from pathlib import Path

import numpy as np
import pyro
import pytest

from dsae_pyro.config import Config
from dsae_pyro.data import Split
from dsae_pyro.data.synthetic import render

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHEETS = Path(os.environ.get("DSAE_TEST_SHEETS", SHARED / "data" / "sprites-lpc"))


def tiny_config(**model) -> Config:
    """A network small enough to train in seconds; same code paths as the presets."""
    cfg = Config()
    m = cfg.model
    m.f_dim, m.z_dim, m.hidden = 4, 3, 8
    m.conv_channels, m.conv_strides, m.conv_kernel, m.conv_features = [4, 4, 4, 4], [2, 2, 2, 2], 4, [16]
    for k, v in model.items():
        setattr(m, k, v)
    t = cfg.train
    t.epochs, t.batch_size, t.lr, t.eval_clips = 2, 6, 3e-3, 0
    cfg.data.name = "npz"
    cfg.data.path = "tiny.npz"
    cfg.validate()
    return cfg


def tiny_split(characters, seed=0) -> Split:
    chars = np.repeat(np.asarray(characters), 9)
    motion = np.tile(np.arange(9), len(characters))
    attrs = np.stack(np.unravel_index(chars, (6, 6, 6, 6)), axis=1)
    return Split(x=render(attrs, motion), attributes=attrs, motion=motion, character=chars)


@pytest.fixture
def tiny_data():
    return {"train": tiny_split([0, 259, 518, 777]), "test": tiny_split([1036, 1295])}


@pytest.fixture(autouse=True)
def fresh_param_store():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    yield


@pytest.fixture
def tiny_npz(tmp_path):
    """A dataset file of 3 train and 2 test characters (27 / 18 clips)."""
    from dsae_pyro.data import save_npz

    path = tmp_path / "tiny.npz"
    save_npz(path, {"train": tiny_split([0, 259, 518]), "test": tiny_split([1036, 1295])})
    return path
