import os
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

from dsae_pyro.config import Config
from dsae_pyro.data import Split
from dsae_pyro.data.synthetic import render

if os.environ.get("PYTEST_XDIST_WORKER"):
    # under pytest -n N each worker computes on one core, and so do the runs, scripts and
    # notebook kernels its tests start: N workers of a thread per core each would fight over them
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

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
    t.device = "cpu"  # exact resume is a CPU promise: cuDNN's conv backward is not deterministic
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


@pytest.fixture(autouse=True, scope="session")
def cache_in_a_temporary_folder(tmp_path_factory):
    """Datasets the tests build (dSprites' 377 MB, real Sprites) are cached for this session only,
    never in the user's home; notebook kernels inherit the variable."""
    old = os.environ.get("DSAE_CACHE")
    os.environ["DSAE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("DSAE_CACHE")
    else:
        os.environ["DSAE_CACHE"] = old


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
