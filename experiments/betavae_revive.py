"""Copy a trained beta-VAE run and give its collapsed latents fresh weights, so that a resumed run
at a lower beta can use them again: the rows of the encoder's last layer that give those latents'
means, and the columns of the decoder's first layer that read them, are drawn again at He scale
(variance 2 / fan_in). Everything else is copied unchanged: the other latents' weights, the Adam
state, the step count and the history.

A latent that beta has closed gives q = N(0, 1) for every image and the decoder ignores it, so
lowering beta later does not reopen it (experiments/README.md); this tests whether it would carry
a factor once it has weights again.

Usage: python experiments/betavae_revive.py SRC DST [--below 0.1] [--seed 0]
then resume DST, e.g. dsae betavae train --out DST --resume --steps 6000 --set train.beta=4
"""

import argparse
import shutil
from pathlib import Path

import torch
from torch import nn

from dsae_pyro.betavae.train import load_betavae
from dsae_pyro.runs import CHECKPOINT, TrainingError

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("src", help="a trained beta-VAE run folder")
p.add_argument("dst", help="the new run folder (must not exist)")
p.add_argument("--below", type=float, default=0.1,
               help="latents whose KL at the last history point is below this many nats")
p.add_argument("--seed", type=int, default=0, help="seed of the fresh weights")
args = p.parse_args()
src, dst = Path(args.src), Path(args.dst)
if dst.exists():
    p.error(f"{dst} exists; name a new folder")
try:
    run = load_betavae(src)
except TrainingError as e:
    p.error(str(e))
kl = run.history[-1]["kl_per_latent"]
dead = [i for i, k in enumerate(kl) if k < args.below]
head = [m for m in run.vae.encoder.modules() if isinstance(m, nn.Linear)][-1]  # -> (loc, log scale)
first = next(m for m in run.vae.decoder.modules() if isinstance(m, nn.Linear))  # z -> hidden
g = torch.Generator().manual_seed(args.seed)
with torch.no_grad():
    for i in dead:
        head.weight[i] = torch.randn(head.in_features, generator=g) * (2 / head.in_features) ** 0.5
        first.weight[:, i] = torch.randn(first.out_features, generator=g) * (2 / first.in_features) ** 0.5

shutil.copytree(src, dst, ignore=shutil.ignore_patterns("evaluation.*"))
ckpt = torch.load(dst / CHECKPOINT, map_location="cpu", weights_only=False)
ckpt["model"] = {k: v.cpu() for k, v in run.vae.state_dict().items()}
torch.save(ckpt, dst / CHECKPOINT)
print(f"{dst}: latents {dead} given fresh weights (KL below {args.below} nats at step {run.step}); "
      f"kept {[i for i in range(len(kl)) if i not in dead]}")
