import numpy as np
import pytest

from dsae_pyro.data import DataError
from dsae_pyro.data.dsprites import (
    HALF_WIDTH,
    N_IMAGES,
    PATCH,
    DSprites,
    factor_values,
    index_of,
    latents_classes,
    load_dsprites_npz,
    make_dsprites,
    save_dsprites,
    sprite_masks,
)


@pytest.fixture(scope="module")
def dsprites():
    return make_dsprites()  # ~5 s, 377 MB bit-packed


def test_factor_grid_and_official_index_order(dsprites):
    c = dsprites.classes
    assert N_IMAGES == 737_280 and c.shape == (N_IMAGES, 6) and dsprites.packed.shape == (N_IMAGES, 64, 8)
    assert c[1].tolist() == [0, 0, 0, 0, 0, 1]  # posY fastest
    assert c[32].tolist() == [0, 0, 0, 0, 1, 0]  # then posX
    assert c[32 * 32].tolist() == [0, 0, 0, 1, 0, 0]  # orientation, scale, shape
    assert c[-1].tolist() == [0, 2, 5, 39, 31, 31]
    assert (index_of(c) == np.arange(N_IMAGES)).all()
    v = dsprites.values
    assert v[:, 0].tolist() == [1.0] * N_IMAGES  # color
    assert sorted(set(v[:, 1])) == [1.0, 2.0, 3.0]
    assert np.allclose(np.unique(v[:, 2]), np.linspace(0.5, 1, 6))
    assert np.allclose(np.unique(v[:, 3]), np.linspace(0, 2 * np.pi, 40))
    assert np.allclose(np.unique(v[:, 5]), np.linspace(0, 1, 32))
    assert dsprites.factors.shape == (N_IMAGES, 5)


def test_position_moves_one_pixel_per_step(dsprites):
    base = dsprites.images([index_of([[0, 2, 3, 7, 10, 10]])[0]])[0, 0].numpy()
    right = dsprites.images([index_of([[0, 2, 3, 7, 11, 10]])[0]])[0, 0].numpy()
    down = dsprites.images([index_of([[0, 2, 3, 7, 10, 11]])[0]])[0, 0].numpy()
    assert base.sum() > 50 and set(np.unique(base)) == {0.0, 1.0}
    assert (np.roll(base, 1, axis=1) == right).all()  # posX: columns
    assert (np.roll(base, 1, axis=0) == down).all()  # posY: rows


def test_shapes_have_the_geometry_they_claim():
    masks = sprite_masks()  # (shape, scale, orientation, P, P)
    for j, s in enumerate(factor_values()[2]):
        r = HALF_WIDTH * s
        assert masks[0, j, 0].sum() == pytest.approx((2 * r) ** 2, rel=0.12)  # square side 2r
        assert masks[1, j, 0].sum() == pytest.approx(np.pi * r * r / 2, rel=0.12)  # ellipse r x r/2
    # the ellipse's long axis turns with the orientation (second moments of the mask)
    c = np.arange(PATCH) + 0.5 - PATCH / 2
    y, x = np.meshgrid(c, c, indexing="ij")
    for k in (0, 5, 13, 27):
        m = masks[1, 5, k]
        cov = np.cov(np.stack([x[m], y[m]]))
        w, vec = np.linalg.eigh(cov)
        angle = np.arctan2(vec[1, 1], vec[0, 1]) % np.pi
        want = factor_values()[3][k] % np.pi
        assert min(abs(angle - want), np.pi - abs(angle - want)) < 0.08
    # the heart is the only shape without a mirror symmetry top-bottom
    heart = masks[2, 5, 0]
    assert not (heart == heart[::-1]).all() and (heart == heart[:, ::-1]).all()
    assert masks.shape[:3] == (3, 6, 40) and not masks[..., 0, :].any()  # fits the patch


def test_npz_round_trip_official_keys_and_errors(tmp_path, dsprites):
    idx = np.arange(0, N_IMAGES, 4099)
    small = DSprites(dsprites.packed[idx], dsprites.classes[idx], dsprites.values[idx])
    official = tmp_path / "official.npz"  # the official layout: unpacked uint8 imgs
    np.savez(official, imgs=np.unpackbits(small.packed, axis=-1), latents_values=small.values,
             latents_classes=small.classes)
    loaded = load_dsprites_npz(official)
    assert (loaded.packed == small.packed).all() and (loaded.classes == small.classes).all()
    ours = tmp_path / "ours.npz"
    save_dsprites(ours, small)
    assert (load_dsprites_npz(ours).images([3]) == small.images([3])).all()
    np.savez(tmp_path / "bad.npz", imgs=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(DataError, match="latents_classes"):
        load_dsprites_npz(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="dsae data dsprites"):
        load_dsprites_npz(tmp_path / "missing.npz")
    assert len(latents_classes()) == N_IMAGES
