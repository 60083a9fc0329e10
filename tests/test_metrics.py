import math

import numpy as np
import pytest
import torch
from conftest import tiny_split

from dsae_pyro.data import ATTRIBUTES, SPRITES
from dsae_pyro.metrics.judge import JudgeError, load_judge, save_judge, train_judge
from dsae_pyro.metrics.protocol import PUBLISHED, inception_stats, judge_generated, markdown_table


def test_inception_stats_by_hand():
    certain = torch.eye(3)
    s = inception_stats(certain)
    assert s["H(y|x)"] == pytest.approx(0, abs=1e-9)
    assert s["H(y)"] == pytest.approx(math.log(3))
    assert s["IS"] == pytest.approx(3)
    assert inception_stats(torch.full((4, 9), 1 / 9))["IS"] == pytest.approx(1)
    p = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    # by hand: H(y|x) = (ln 2 + (0.25 ln 4 + 0.75 ln(4/3))) / 2; p(y) = (0.25, 0.375, 0.375)
    h_cond = (math.log(2) + 0.25 * math.log(4) + 0.75 * math.log(4 / 3)) / 2
    h_y = -(0.25 * math.log(0.25) + 2 * 0.375 * math.log(0.375))
    s = inception_stats(p)
    assert s["H(y|x)"] == pytest.approx(h_cond, rel=1e-6)
    assert s["H(y)"] == pytest.approx(h_y, rel=1e-6)
    assert s["IS"] == pytest.approx(math.exp(h_y - h_cond), rel=1e-6)


@pytest.fixture(scope="module")
def split():
    return tiny_split([0, 259, 518, 777, 1036, 1295])  # 6 characters x 9 motions


def oracle(split):
    """A perfect judge for this split: looks each clip up by its pixels."""
    table = {split.x[i].tobytes(): i for i in range(len(split))}

    def predict(clips):
        pix = (clips.permute(0, 1, 3, 4, 2) * 255).round().to(torch.uint8).numpy()
        idx = [table[c.tobytes()] for c in pix]
        out = {"motion": torch.eye(9)[split.motion[idx]]}
        out.update({a: torch.eye(6)[split.attributes[idx, j]] for j, a in enumerate(ATTRIBUTES)})
        return out

    return predict


def test_protocol_copy_model_scores_perfectly(split):
    scores = judge_generated(oracle(split), lambda x: (x, x), split, draws=2)
    for k in ("motion_acc", "action_acc", "direction_acc", *[f"{a}_acc" for a in ATTRIBUTES]):
        assert scores[k]["mean"] == 1.0 and scores[k]["std"] == 0.0
    assert scores["IS"]["mean"] == pytest.approx(9)  # balanced: H(y) = ln 9, H(y|x) = 0
    assert scores["H(y)"]["mean"] == pytest.approx(math.log(9))


def test_accuracies_on_copies_and_on_shuffled_clips(split):
    from dsae_pyro.data import Split
    from dsae_pyro.metrics.judge import accuracies

    assert set(accuracies(oracle(split), split).values()) == {1.0}
    shuffled = np.random.RandomState(0).permutation(len(split))
    # the clips of other rows under this split's labels
    other = Split(split.x[shuffled], split.attributes, split.motion, split.character)
    scores = accuracies(oracle(split), other, batch_size=len(split))
    expected = (split.motion[shuffled] == split.motion).mean()  # by hand
    assert scores["motion"] == pytest.approx(expected) and expected < 0.4


def test_protocol_random_model_scores_near_chance(split):
    from dsae_pyro.data import to_tensor

    rng = np.random.RandomState(0)

    def random_clips(x):
        return to_tensor(split.x[rng.randint(len(split), size=len(x))])

    scores = judge_generated(oracle(split), lambda x: (random_clips(x), random_clips(x)), split,
                             draws=3)
    assert scores["motion_acc"]["mean"] < 0.3  # chance 1/9
    assert scores["direction_acc"]["mean"] < 0.6  # chance 1/3
    assert all(scores[f"{a}_acc"]["mean"] < 0.5 for a in ATTRIBUTES)
    table = markdown_table(scores, SPRITES)
    assert "this run" in table and all(name in table for name in PUBLISHED)


def test_several_judges_score_the_same_clips_and_keep_their_spread(split):
    """A perfect judge and one that reads every motion as motion 0: by hand, the second scores
    motion 1/9 (each motion holds a ninth of the clips) and every attribute 1."""
    perfect = oracle(split)

    def motion_blind(clips):
        out = perfect(clips)
        return {**out, "motion": torch.eye(9)[torch.zeros(len(clips), dtype=torch.long)]}

    calls = []

    def generate(x):
        calls.append(len(x))
        return x, x

    scores = judge_generated([perfect, motion_blind], generate, split, draws=2)
    assert sum(calls) == 2 * len(split)  # generated once per draw, not once per judge
    m = scores["motion_acc"]
    assert m["judges"] == 2 and m["draws"] == 2
    assert m["per_judge"] == pytest.approx([1.0, 1 / 9])
    assert m["mean"] == pytest.approx((1 + 1 / 9) / 2)
    assert m["std"] == pytest.approx((1 - 1 / 9) / 2)  # two judges x two identical draws
    assert scores["IS"]["per_judge"] == pytest.approx([9, 1])
    assert scores["body_acc"]["mean"] == 1.0 and scores["body_acc"]["std"] == 0.0
    table = markdown_table(scores, SPRITES)
    assert "mean ± std over judges x draws" in table
    assert "| judge 2 (mean over draws) | 11.11 |" in table  # each judge's own row


def test_judge_trains_saves_and_guards_its_dataset(tmp_path, split):
    data = {"train": split, "test": split}
    judge, acc = train_judge(data, epochs=1, batch_size=18, progress=False)
    assert set(acc) == set(SPRITES.heads) and all(0 <= v <= 1 for v in acc.values())
    path = save_judge(tmp_path / "judge.pt", judge, "synthetic(seed=423)", acc)
    loaded, state = load_judge(path, "synthetic(seed=423)")
    assert state["test_accuracy"] == acc
    x = torch.rand(2, 8, 3, 64, 64)
    assert torch.allclose(loaded.predict(x)["motion"], judge.predict(x)["motion"])
    with pytest.raises(JudgeError, match="trained on synthetic\\(seed=423\\), not sprites"):
        load_judge(path, "sprites(lpc)")


def test_confusions_count_by_hand_and_rank_the_errors(split):
    """A judge that reads body 0 as body 1, and nothing else wrong: by hand, the split's one
    body-0 character gives 9 clips (one per motion) in row 0, column 1."""
    from dsae_pyro.data import to_tensor
    from dsae_pyro.metrics.judge import accuracies, head_confusions, misreadings

    perfect = oracle(split)

    def pale_blind(clips):
        out = perfect(clips)
        body = out["body"].argmax(-1)
        return {**out, "body": torch.eye(6)[torch.where(body == 0, 1, body)]}

    preds = {k: [v.argmax(-1).numpy()] for k, v in pale_blind(to_tensor(split.x)).items()}
    conf = head_confusions(preds, split)
    body = np.array(conf["body"])
    zeros = int((split.attributes[:, 0] == 0).sum())
    assert zeros > 0 and body[0, 1] == zeros and body[0, 0] == 0
    assert body.sum() == len(split) and np.trace(body) == len(split) - zeros
    assert np.trace(np.array(conf["motion"])) == len(split)  # motion read right throughout
    assert misreadings(conf) == [("body", 0, 1, zeros, zeros)]
    assert misreadings(head_confusions({k: [split.motion] if k == "motion" else [
        split.attributes[:, ATTRIBUTES.index(k)]] for k in conf}, split)) == []
    assert accuracies(pale_blind, split)["body"] == pytest.approx(1 - zeros / len(split))
