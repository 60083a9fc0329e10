"""Unique Pyro names for module instances.

`pyro.module(name, m)` silently hands back parameters already stored under `name`, so two models built
in one notebook would share (and the optimiser would step) the first one's tensors. Each instance gets
its own name instead; checkpoints store parameters by their module-relative names.
"""

import itertools

_ids = itertools.count()


def unique_name(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"
