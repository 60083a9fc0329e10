"""The judge: a clip classifier (conv encoder + bi-LSTM) with a head for motion and one per attribute
of the dataset's label schema (Sprites: 9 motions; body, bottom, top, hair of 6 values each).

Trained with labels on a dataset's train split; saved with that dataset's identity so that it is never
used to score clips of another dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .._io import atomic_write
from ..data import SPRITES, Schema, Split, to_tensor
from ..nets import FrameEncoder


class JudgeError(RuntimeError):
    """A judge that does not fit the data it is asked to score."""


class Judge(nn.Module):
    """Logits of every head of `schema` (motion, then each attribute) for clips (B, T, C, H, W)."""

    def __init__(self, channels=(16, 32, 64, 64), features: int = 128, hidden: int = 64,
                 schema: str = SPRITES.to_json(), image_channels: int = 3, image_size: int = 64):
        super().__init__()
        self.arch = {"channels": list(channels), "features": features, "hidden": hidden,
                     "schema": schema, "image_channels": image_channels, "image_size": image_size}
        self.schema = Schema.from_json(schema)
        self.encoder = FrameEncoder(list(channels), [2] * len(channels), 4, [features],
                                    image_channels, image_size)
        self.lstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.heads = nn.ModuleDict({k: nn.Linear(2 * hidden, n)
                                    for k, n in self.schema.heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.lstm(self.encoder(x))[0].mean(1)  # average over frames of both directions
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 128) -> dict[str, torch.Tensor]:
        """Softmax probabilities per head, in eval mode, for any number of clips."""
        self.eval()
        out = {k: [] for k in self.heads}
        for i in range(0, len(x), batch_size):
            for k, v in self(x[i:i + batch_size]).items():
                out[k].append(v.softmax(-1).cpu())
        return {k: torch.cat(v) for k, v in out.items()}


def labels_of(split: Split) -> dict[str, np.ndarray]:
    return {"motion": split.motion,
            **{a: split.attributes[:, i] for i, a in enumerate(split.schema.attribute_names)}}


def head_accuracies(predictions: dict[str, list[np.ndarray]], split: Split) -> dict[str, float]:
    """Accuracy per head of predicted classes (batches in split order) against the split's labels."""
    labels = labels_of(split)
    return {k: float((np.concatenate(v) == labels[k]).mean()) for k, v in predictions.items()}


def head_confusions(predictions: dict[str, list[np.ndarray]], split: Split
                    ) -> dict[str, list[list[int]]]:
    """Per head, the counts of clips of true class i read as class j (row i, column j)."""
    labels, classes = labels_of(split), split.schema.heads
    out = {}
    for k, v in predictions.items():
        counts = np.zeros((classes[k], classes[k]), dtype=np.int64)
        np.add.at(counts, (labels[k], np.concatenate(v)), 1)
        out[k] = counts.tolist()
    return out


def misreadings(confusions: dict[str, list[list[int]]], top: int = 3
                ) -> list[tuple[str, int, int, int, int]]:
    """The `top` most frequent errors of one judge, most frequent first: (head, true class, class
    read, clips, clips of that true class)."""
    errors = [(k, i, j, n, sum(row)) for k, rows in confusions.items()
              for i, row in enumerate(rows) for j, n in enumerate(row) if i != j and n]
    return sorted(errors, key=lambda e: (-e[3], e[0], e[1], e[2]))[:top]


@torch.no_grad()
def accuracies(predict: Callable, split: Split, device="cpu", batch_size: int = 128
               ) -> dict[str, float]:
    """Accuracy of every head of `predict` (e.g. `Judge.predict`) on a labelled split."""
    preds = {k: [] for k in split.schema.heads}
    for i in range(0, len(split), batch_size):
        for k, v in predict(to_tensor(split.x[i:i + batch_size], device)).items():
            preds[k].append(v.argmax(-1).cpu().numpy())
    return head_accuracies(preds, split)


def train_judge(data: dict[str, Split], epochs: int = 6, lr: float = 2e-3, batch_size: int = 32,
                seed: int = 0, progress: bool = True, device="cpu") -> tuple[Judge, dict]:
    """Fit a judge on data['train'] (cross-entropy summed over heads); returns it and test accuracy."""
    torch.manual_seed(seed)
    train = data["train"]
    if not train.labelled:
        raise JudgeError("a judge learns from labels, and these clips carry none (an npz without "
                         "attributes_train/motion_train); evaluate without --judge instead")
    _, _, size, _, channels = train.x.shape
    judge = Judge(schema=train.schema.to_json(), image_channels=channels, image_size=size).to(device)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    # cosine decay to 0: with a constant rate the last steps' noise decided the subtle body head
    # (83.6% once, 99.9% another time); annealed, the end point is stable
    steps = epochs * -(-len(train) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    labels = {k: torch.as_tensor(v) for k, v in labels_of(train).items()}
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        judge.train()
        order = torch.randperm(len(train), generator=g)
        bar = tqdm(range(0, len(train), batch_size), disable=not progress, leave=False,
                   desc=f"judge epoch {epoch + 1}/{epochs}")
        for i in bar:
            idx = order[i:i + batch_size]
            logits = judge(to_tensor(train.x[idx.numpy()], device))
            loss = sum(nn.functional.cross_entropy(logits[k], labels[k][idx].to(device))
                       for k in labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return judge.eval(), accuracies(judge.predict, data["test"], device)


def save_judge(path, judge: Judge, data_id: str, test_accuracy: dict) -> Path:
    state = {"format": 1, "arch": judge.arch, "state": judge.state_dict(), "data": data_id,
             "test_accuracy": test_accuracy}
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_judge(path, data_id: str | None = None) -> tuple[Judge, dict]:
    """Load a judge; with data_id, refuse one trained on other data."""
    path = Path(path)
    if not path.is_file():
        raise JudgeError(f"no judge at {path}; train one with `dsae judge train --data ... --out "
                         f"{path}`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a torn or foreign file
        raise JudgeError(f"{path} is not a judge file ({type(e).__name__}); train one with "
                         "`dsae judge train --data ... --out FILE`") from e
    if not isinstance(state, dict) or not {"arch", "state", "data"} <= set(state):
        what = "a DSAE or beta-VAE checkpoint" if isinstance(state, dict) and "format" in state \
            else "not a judge file"
        raise JudgeError(f"{path} is {what}, not a judge; train one with `dsae judge train "
                         "--data ... --out FILE` and pass that as --judge")
    if data_id is not None and state["data"] != data_id:
        raise JudgeError(f"the judge {path} was trained on {state['data']}, not {data_id}; "
                         "train a judge on this dataset with `dsae judge train`")
    judge = Judge(**state["arch"])
    judge.load_state_dict(state["state"])
    return judge.eval(), state


