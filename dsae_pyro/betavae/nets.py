"""The beta-VAE's networks on dSprites (Higgins et al. 2017; Burgess et al. 2018): ReLU, no
BatchNorm. Under PyTorch's default init each ReLU layer shrinks the signal, so after seven layers
the encoder's means differ between images by about 3e-4 against q's noise of 1 and the ELBO sits
on the mean image for hundreds of steps; He init (He et al. 2015) removes that plateau, but at
beta 16 the code then forms with x and y rotated (experiments/README.md), so it is an option."""

from __future__ import annotations

from torch import nn


def _mlp(sizes: list[int]) -> list[nn.Module]:
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return layers


INITS = ("he", "torch")


def betavae_nets(arch: str, latents: int, init: str = "torch") -> tuple[nn.Module, nn.Module]:
    """(encoder: image (B, 1, 64, 64) -> (B, 2 * latents), decoder: (B, latents) -> logits
    (B, 1, 64, 64)). conv: 4 conv 32x4x4 stride 2, FC 256-256 and the transpose; mlp:
    4096-1200-1200 | 1200-1200-1200-4096. init: "he" (variance-preserving through ReLU, zero
    biases) or "torch" (PyTorch's default)."""
    if arch == "conv":
        convs, deconvs, c_in = [], [], 1
        for _ in range(4):
            convs += [nn.Conv2d(c_in, 32, 4, 2, 1), nn.ReLU()]
            c_in = 32
        for i in range(4):
            deconvs.append(nn.ConvTranspose2d(32, 32 if i < 3 else 1, 4, 2, 1))
            if i < 3:
                deconvs.append(nn.ReLU())
        encoder = nn.Sequential(*convs, nn.Flatten(), *_mlp([512, 256, 256]),
                                nn.Linear(256, 2 * latents))
        decoder = nn.Sequential(*_mlp([latents, 256, 256, 512]), nn.Unflatten(1, (32, 4, 4)),
                                *deconvs)
    elif arch == "mlp":
        encoder = nn.Sequential(nn.Flatten(), *_mlp([4096, 1200, 1200]), nn.Linear(1200, 2 * latents))
        decoder = nn.Sequential(*_mlp([latents, 1200, 1200, 1200]), nn.Linear(1200, 4096),
                                nn.Unflatten(1, (1, 64, 64)))
    else:
        raise ValueError(f"unknown beta-VAE architecture {arch!r}; choose conv or mlp")
    if init == "he":
        for m in [*encoder.modules(), *decoder.modules()]:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    elif init != "torch":
        raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
    return encoder, decoder
