import pyro
import pytest
import torch
from conftest import tiny_config
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

from dsae_pyro import posterior as ins
from dsae_pyro.data import to_tensor
from dsae_pyro.guides import make_guide
from dsae_pyro.model import DSAE


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained for a few steps on synthetic clips, in eval mode."""
    from conftest import tiny_split

    cfg = tiny_config(guide="full")
    torch.manual_seed(0)
    model, guide = DSAE(cfg.model), make_guide(cfg.model)
    x = to_tensor(tiny_split([0, 777]).x[:12])
    svi = SVI(model.model, guide, pyro.optim.Adam({"lr": 3e-3}), Trace_ELBO())
    for _ in range(10):
        svi.step(x)
    return model.eval(), guide.eval(), x[:4]


def test_encode_matches_the_guide(trained):
    model, guide, x = trained
    post = ins.encode(guide, x)
    tr = poutine.trace(ins.use_mean()(guide)).get_trace(x)
    with torch.no_grad():  # q(f | x) straight from the guide's networks, no Pyro
        loc, scale = guide.q_f(guide.f_features(x))
    torch.testing.assert_close(post.f, loc)
    torch.testing.assert_close(post.f_scale, scale)
    assert torch.allclose(post.z[:, 2], tr.nodes["z_3"]["value"], atol=1e-6)
    # the full guide's z depends on f: with means everywhere, z_loc is q's mean given f = E[f]
    assert torch.equal(post.z, post.z_loc)
    sampled = ins.encode(guide, x, mean=False)
    assert not torch.equal(sampled.f, post.f) and sampled.z.shape == post.z.shape


def test_swap_conditions_the_right_sites(trained):
    model, guide, x = trained
    a, b = ins.encode(guide, x[:2]), ins.encode(guide, x[2:])
    out = ins.swap(model, guide, x[:2], x[2:])
    assert torch.allclose(out, model.decode(a.f, b.z), atol=1e-6)  # the nets, directly
    # condition fixes exactly the given sites and leaves the others to the prior
    data = {"f": a.f, "z_1": b.z[:, 0]}
    tr = poutine.trace(poutine.condition(model.model, data=data)).get_trace(batch_size=2)
    assert torch.equal(tr.nodes["f"]["value"], a.f) and tr.nodes["f"]["is_observed"]
    assert not tr.nodes["z_2"]["is_observed"]


def test_do_changes_only_downstream_sites(trained):
    model, *_ = trained
    forced = torch.full((3, model.cfg.z_dim), 2.0)
    pyro.set_rng_seed(1)
    base = poutine.trace(model.model).get_trace(batch_size=3)
    pyro.set_rng_seed(1)
    tr = poutine.trace(poutine.do(model.model, data={"z_4": forced})).get_trace(batch_size=3)
    for s in ("f", "z_1", "z_2", "z_3"):  # upstream: the same draws
        assert torch.equal(tr.nodes[s]["value"], base.nodes[s]["value"])
    loc = tr.nodes["z_5"]["fn"].base_dist.loc  # downstream: the prior now starts from z_4 = 2
    assert not torch.allclose(loc, base.nodes["z_5"]["fn"].base_dist.loc)
    assert not torch.allclose(tr.nodes["x"]["fn"].mean, base.nodes["x"]["fn"].mean)
    out = ins.intervene(model, {"f": torch.zeros(2, model.cfg.f_dim)})
    assert out.shape == (2, 8, 3, 64, 64)


def test_predictive_shapes(trained):
    model, guide, x = trained
    prior = ins.predictive(model, num_samples=2, batch_size=3)
    assert prior["x"].shape == (2, 3, 8, 3, 64, 64) and prior["z_8"].shape == (2, 3, 3)
    post = ins.predictive(model, guide, x, num_samples=2)
    assert post["f"].shape == (2, 4, model.cfg.f_dim) and post["x"].shape == (2, 4, 8, 3, 64, 64)
    assert not torch.equal(post["x"][0], x)  # fresh frames, not the data copied back


def test_diagnose_splits_the_elbo(trained):
    model, guide, x = trained
    pyro.set_rng_seed(0)
    d = ins.diagnose(model, guide, x)
    assert set(d.kl) == {"f", *[f"z_{t}" for t in range(1, 9)]}
    post = ins.encode(guide, x)  # KL(N(m, s) || N(0, 1)) = (s^2 + m^2 - 1) / 2 - log s, by hand
    m, sd = post.f_loc, post.f_scale
    by_hand = ((sd ** 2 + m ** 2 - 1) / 2 - sd.log()).sum() / len(x)
    assert d.kl["f"] == pytest.approx(float(by_hand), rel=1e-5)
    assert d.kl_z == pytest.approx(sum(d.kl[f"z_{t}"] for t in range(1, 9)))
    assert 0 <= d.share_f <= 1
    assert d.active_f.shape == (model.cfg.f_dim,) and d.active_z.shape == (model.cfg.z_dim,)
    # log p(x|f,z) + sum log p - sum log q is the one-sample ELBO Trace_ELBO computes
    pyro.set_rng_seed(0)
    loss = Trace_ELBO().loss(model.model, guide, x) / len(x)
    mc = sum(d.log_p.values()) - sum(d.log_q.values())
    assert -loss == pytest.approx(mc, rel=1e-5)


def test_inspecting_mid_training_uses_and_keeps_the_running_statistics():
    """Right after a bare svi.step (train mode) the helpers read BatchNorm's running statistics,
    never change them, and hand the modules back in train mode."""
    from conftest import tiny_split

    cfg = tiny_config()
    model, guide = DSAE(cfg.model), make_guide(cfg.model)
    x = to_tensor(tiny_split([0, 777]).x[:6])
    SVI(model.model, guide, pyro.optim.Adam({"lr": 3e-3}), Trace_ELBO()).step(x)
    state = {k: v.clone() for k, v in [*model.state_dict().items(), *guide.state_dict().items()]}
    one, two = ins.encode(guide, x[:2]), ins.encode(guide, x)
    torch.testing.assert_close(one.f, two.f[:2])  # eval mode: a clip's code ignores its batch
    ins.decode(model, {"f": two.f})
    ins.diagnose(model, guide, x)
    ins.predictive(model, guide, x, num_samples=2)
    after = dict([*model.state_dict().items(), *guide.state_dict().items()])
    assert all(torch.equal(v, after[k]) for k, v in state.items())
    assert model.training and guide.training
