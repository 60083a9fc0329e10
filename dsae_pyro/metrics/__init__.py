"""Evaluation: the judge classifier and the Sprites disentanglement protocol."""
