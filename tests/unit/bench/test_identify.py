"""The face_recognition side of ``bench.identify`` on encodings made by hand (the peer itself
is not installed everywhere: its recipe is plain arithmetic on its encodings)."""

from __future__ import annotations

import numpy as np
import pytest
from bench.identify import peer_figures, rows


def unit(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


# Two enrolable people (a, b) and one never enrolled (c); distances are easy to read off:
# a's probe is 0.1 from a's enrolment photo, b's probe 0.7 from b's (beyond 0.6: unknown),
# c is 0.5 from a's photo (within 0.6: wrongly named a).
ENCODINGS = {
    "a/1.jpg": unit(0.0, 0.0),
    "a/2.jpg": unit(0.1, 0.0),
    "b/1.jpg": unit(5.0, 0.0),
    "b/2.jpg": unit(5.0, 0.7),
    "c/1.jpg": unit(0.0, 0.5),
}
PHOTOS = {"a": ["a/1.jpg", "a/2.jpg"], "b": ["b/1.jpg", "b/2.jpg"], "c": ["c/1.jpg"]}


def test_the_recipe_names_the_nearest_known_face_within_its_tolerance() -> None:
    result = peer_figures(PHOTOS, ENCODINGS, size="all", enrol_photos=1, seed=0)
    f = result["figures"]
    assert result["gallery_size"] == 2
    assert f["mated_probes"] == 2
    assert f["non_mated_probes"] == 1
    assert f["rank1"] == 1.0
    assert f["at_rule"]["fnir"] == pytest.approx(0.5)  # b at 0.7: unknown
    assert f["at_rule"]["mated_unknown"] == pytest.approx(0.5)
    assert f["at_rule"]["fpir"] == 1.0  # c at 0.5 from a: named
    # threshold-free: the stranger's best distance (0.5) is the bar; a (0.1) passes, b fails
    assert result["threshold_distance"][0] == pytest.approx(0.5)
    assert f["threshold_free"][0]["fnir"] == pytest.approx(0.5)


def test_a_gallery_of_one_makes_the_other_a_stranger() -> None:
    result = peer_figures(PHOTOS, ENCODINGS, size="1", enrol_photos=1, seed=0)
    assert result["gallery_size"] == 1
    assert result["figures"]["mated_probes"] == 1
    assert result["figures"]["non_mated_probes"] == 2
    table = rows("face_recognition", [result])
    assert table[0]["side"] == "face_recognition"
    assert table[0]["gallery_size"] == 1
