"""dsae_pyro: the Disentangled Sequential Autoencoder and friends, in Pyro."""

__version__ = "0.1.0"
