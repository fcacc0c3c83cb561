"""Calibrated similarity: Euclidean distance between unit embeddings -> 0-100.

similarity = 100 / (1 + exp(SLOPE * (distance - MIDPOINT)))

A logistic curve fitted to the LFW development pairs
(../shared/testdata/lfw, 1500 same and 1500 different pairs) with the
default engine (dlib ResNet, HOG + 68-point landmarks, mirrored-chip
averaging); regenerate the figures with ``facelens bench lfw``:

* MIDPOINT (0.42) is the distance where similarity is 50: the
  accuracy-optimal threshold on LFW (``best_distance_threshold``: 0.419),
  where same and different people are equally likely.
* DISTANCE_AT_80 (0.39) is where similarity is 80, Rekognition's default
  FaceMatchThreshold: the strictest distance that lets at most 0.1% of LFW's
  different-people pairs through (``distance_at_far_1e3``: 0.401), less a
  0.011 safety margin. Measured there: FAR 0 of 1500, TAR 96.1%.
* SLOPE follows from the two: ln(4) / (MIDPOINT - DISTANCE_AT_80), about 46
  per unit distance. On LFW, same-person pairs sit at 0.20-0.38 (5th-95th
  percentile; similarity 90-100) and different people at 0.43-0.57 and
  beyond (1st percentile to median; similarity 39 down to 0.1).

So: threshold 80 means at most 1 false match per 1000 comparisons of
strangers on LFW-like photos; higher thresholds mean fewer false matches and
more missed ones. The mapping is monotone, so ranking is unchanged.
"""

from __future__ import annotations

import math

MIDPOINT = 0.42
DISTANCE_AT_80 = 0.39
SLOPE = math.log(4.0) / (MIDPOINT - DISTANCE_AT_80)


def similarity(distance: float) -> float:
    """0-100 from a distance in 0-2 (unit vectors); 100 is identical."""
    z = SLOPE * (distance - MIDPOINT)
    if z > 700:  # exp overflow: as dissimilar as it gets
        return 0.0
    return 100.0 / (1.0 + math.exp(z))


def distance_for_similarity(threshold: float) -> float:
    """The largest distance whose similarity is >= ``threshold`` (0-100)."""
    if threshold <= 0:
        return 2.0
    if threshold >= 100:
        return 0.0
    return max(0.0, MIDPOINT + math.log(100.0 / threshold - 1.0) / SLOPE)
