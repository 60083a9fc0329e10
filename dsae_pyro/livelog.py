"""Live training curves in TensorBoard (optional: `pip install "dsae_pyro[tensorboard]"`).

`dsae train --tensorboard` (train.tensorboard = true) writes `RUN/tensorboard/`; watch it with
`tensorboard --logdir runs`. Per step: the loss per clip, the objective's extra terms, the KL weight,
the learning rate and clips/s. Per epoch: the test split's -ELBO and its terms (reconstruction,
KL(f), KL(z_1:T), explained variance), and the reconstruction and swap grids as images.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


class TensorBoardError(RuntimeError):
    """TensorBoard logging was asked for, but its package is missing."""


class LiveLog:
    """A SummaryWriter in `run_dir/tensorboard` with the two calls training makes."""

    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch's module needs the tensorboard package
            raise TensorBoardError(
                "train.tensorboard = true needs the tensorboard package: pip install "
                "'dsae_pyro[tensorboard]' (or pip install tensorboard), or drop --tensorboard") from e
        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        self.last_step = 0

    def step(self, step: int, scalars: dict[str, float]) -> None:
        self.last_step = step
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def epoch(self, scalars: dict[str, float], run, test) -> None:
        """The epoch's scalars, and its reconstruction and swap grids as images, at the epoch's
        last training step."""
        step = self.last_step
        from PIL import Image

        from .report import reconstruction_grid, swap_grid

        self.step(step, scalars)
        with tempfile.TemporaryDirectory() as tmp:
            for name, draw in (("reconstructions", reconstruction_grid), ("swap", swap_grid)):
                path = draw(run, test, Path(tmp) / f"{name}.png")
                with Image.open(path) as img:
                    self.writer.add_image(name, np.asarray(img.convert("RGB")), step,
                                          dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
