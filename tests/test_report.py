"""The report's choice of clips finishes on any split, and says when it had to settle for less;
its figures keep their text inside the picture."""

import numpy as np
import pytest
from conftest import tiny_split
from matplotlib.backends.backend_agg import FigureCanvasAgg

from dsae_pyro.config import load_preset
from dsae_pyro.data.labels import SPRITES
from dsae_pyro.evaluate import supervision
from dsae_pyro.report import pick_pairs
from dsae_pyro.viz import scores_figure


def test_pairs_differ_in_character_action_and_direction():
    split = tiny_split([0, 259, 518])
    a, b = pick_pairs(split, 6, seed=3)
    assert len(a) == 6
    assert (split.character[a] != split.character[b]).all()
    assert (split.motion[a] // 3 != split.motion[b] // 3).all()
    assert (split.motion[a] % 3 != split.motion[b] % 3).all()


def test_one_character_or_no_labels_finishes_with_a_warning():
    """Used to loop forever: no pair differs in character."""
    one = tiny_split([0])
    with pytest.warns(UserWarning, match="differ in character only|differ in motion only"):
        a, b = pick_pairs(one, 4)
    assert len(a) == 4 and (one.motion[a] != one.motion[b]).all()
    unlabelled = tiny_split([0])
    unlabelled.motion[:], unlabelled.character[:] = 0, 0
    with pytest.warns(UserWarning, match="differ in clip only"):
        a, b = pick_pairs(unlabelled, 4)
    assert (a != b).all()
    with pytest.warns(UserWarning, match="one clip"):
        a, b = pick_pairs(unlabelled.subset(slice(0, 1)), 2)
    assert np.array_equal(a, [0, 0])


def test_markdown_becomes_html_tables_and_paragraphs():
    from dsae_pyro.report import markdown_html

    text = "| a | b <x> |\n|---|---|\n| 1 | 2 |\n\nA line & more.\n"
    out = markdown_html(text)
    assert out == ("<table><tr><th>a</th><th>b &lt;x&gt;</th></tr><tr><td>1</td><td>2</td></tr>"
                   "</table>\n<p>A line &amp; more.</p>")


def test_the_scores_figure_keeps_a_long_run_description_inside_the_figure():
    heads = ["motion", "action", "direction", "body", "bottom", "top", "hair"]
    scores = {f"{h}_acc": {"mean": 0.9, "std": 0.01, "judges": 3, "per_judge": [0.9] * 3}
              for h in heads}
    training = supervision(load_preset("nolabel"))  # the nolabel preset's: 3 lines
    fig = scores_figure(scores, SPRITES, 90.73, training)
    renderer = FigureCanvasAgg(fig).get_renderer()
    title = fig.axes[0].title
    box = title.get_window_extent(renderer)
    assert "silhouettes" in title.get_text()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
