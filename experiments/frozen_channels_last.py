"""Pyro pitfall: a channels_last module under pyro.module is silently frozen by SVI (pyro-ppl 1.9.2).
The param store keeps `.contiguous()` of each parameter: for channels_last that is a copy, which the
optimiser steps while the forward pass keeps reading the module's own, never-updated weight."""
import pyro
import pyro.distributions as dist
import torch

x = torch.randn(2, 2, 8, 8)
for fmt in (torch.contiguous_format, torch.channels_last):
    pyro.clear_param_store()
    conv = torch.nn.Conv2d(2, 2, 3).to(memory_format=fmt)
    w0 = conv.weight.detach().clone()

    def model(x, conv=conv):
        pyro.module("conv", conv)
        pyro.sample("y", dist.Normal(conv(x), 1.0).to_event(4), obs=x[..., 1:-1, 1:-1])

    pyro.infer.SVI(model, lambda x: None, pyro.optim.Adam({"lr": 0.1}), pyro.infer.Trace_ELBO()).step(x)
    print(f"{fmt}: conv weight changed by one SVI step: {not torch.equal(conv.weight, w0)}")
