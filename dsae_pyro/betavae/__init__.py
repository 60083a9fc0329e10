"""beta-VAE (Higgins et al. 2017) and capacity-annealed beta-VAE (Burgess et al. 2018) on dSprites.

    model.py       the Pyro model p(z) p(x | z) and guide q(z | x)
    objectives.py  objective H (beta via poutine.scale, Trace_ELBO) and B (gamma |KL - C|)
    train.py       the step-based training loop with checkpoints and exact resume
    figures.py     traversals (PNG grid, GIFs), reconstructions, KL per latent, the latent table
"""
