"""CUDA paths (skipped without a GPU): training on the GPU moves every parameter, and a checkpoint
written there loads on the CPU with the same weights."""

import pytest
import torch
from conftest import tiny_config

from dsae_pyro.runs import pick_device
from dsae_pyro.train import fit, load_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_train_on_gpu_and_load_on_cpu(tmp_path, tiny_data):
    assert pick_device("auto").type == "cuda"
    cfg = tiny_config()
    cfg.train.epochs, cfg.train.device = 1, "cuda"
    run = fit(cfg, tiny_data, tmp_path, progress=False)  # the store check runs on the first step
    assert next(run.model.parameters()).is_cuda
    cpu = load_run(tmp_path, torch.device("cpu"))
    for k, v in run.model.state_dict().items():
        assert torch.equal(v.cpu(), cpu.model.state_dict()[k]), k
    assert cpu.model.model(batch_size=2).shape == (2, 8, 3, 64, 64)


def test_bf16_autocast_step_moves_every_parameter(tiny_data):
    import pyro

    from dsae_pyro.data import to_tensor
    from dsae_pyro.train import Run

    run = Run.create(tiny_config(), torch.device("cuda"))
    x = to_tensor(tiny_data["train"].x[:6], torch.device("cuda"))
    before = [p.detach().clone() for p in [*run.model.parameters(), *run.guide.parameters()]]
    with torch.autocast("cuda", dtype=torch.bfloat16), pyro.validation_enabled(False):
        loss = run.svi.step(x)
    after = [*run.model.parameters(), *run.guide.parameters()]
    assert loss == loss and all(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
