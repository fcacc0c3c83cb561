"""The tracker: one id per face across frames, new ids for new faces, ends after the timeout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facelens.edge.tracking import Tracker, appearance, iou, look_alike
from facelens.engine.types import DetectedFace, Landmarks, Point
from facelens.errors import InvalidParameterException
from facelens.values.boxes import PixelBox


def face(left: float, top: float, size: float = 100.0, confidence: float = 95.0) -> DetectedFace:
    p = Point(left + size / 2, top + size / 2)
    return DetectedFace(
        PixelBox(left, top, left + size, top + size), Landmarks(p, p, p, p, p), confidence
    )


def test_iou() -> None:
    a = PixelBox(0, 0, 10, 10)
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, PixelBox(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(a, PixelBox(20, 20, 30, 30)) == 0.0


def test_a_moving_face_keeps_its_track() -> None:
    tracker = Tracker(iou_threshold=0.2, timeout=1.0)
    ids: set[int] = set()
    for step in range(30):
        update = tracker.update([face(100 + step * 5, 100)], step / 30)
        ids.update(a.track_id for a in update.assignments)
    assert ids == {1}
    assert tracker.started == 1


def test_two_faces_two_tracks_and_no_swap() -> None:
    tracker = Tracker()
    first = tracker.update([face(0, 0), face(300, 0)], 0.0)
    assert [a.new for a in first.assignments] == [True, True]
    second = tracker.update([face(305, 2), face(4, 1)], 0.04)
    by_left = {a.face.box.left: a.track_id for a in second.assignments}
    assert by_left == {4: 1, 305: 2}


def test_a_fast_small_face_continues_by_its_centre() -> None:
    tracker = Tracker(iou_threshold=0.3)
    tracker.update([face(100, 100, size=40)], 0.0)
    # moved 25 px: overlap 0.23, under the threshold, but its centre is near
    update = tracker.update([face(125, 100, size=40)], 0.1)
    assert [a.new for a in update.assignments] == [False]


def test_a_far_face_of_another_size_starts_a_new_track() -> None:
    tracker = Tracker()
    tracker.update([face(100, 100, size=40)], 0.0)
    update = tracker.update([face(110, 100, size=200)], 0.1)
    assert [a.new for a in update.assignments] == [True]


def test_tracks_end_after_the_timeout() -> None:
    tracker = Tracker(timeout=1.0)
    tracker.update([face(0, 0)], 0.0)
    assert tracker.update([], 0.9).ended == []
    assert tracker.update([], 1.1).ended == [1]
    assert tracker.active == 0
    again = tracker.update([face(0, 0)], 1.2)
    assert again.assignments[0].track_id == 2


def test_end_all() -> None:
    tracker = Tracker()
    tracker.update([face(0, 0), face(300, 300)], 0.0)
    assert tracker.end_all() == [1, 2]
    assert tracker.active == 0


@pytest.mark.parametrize(("threshold", "timeout"), [(0.0, 1.0), (1.0, 1.0), (0.5, 0.0)])
def test_bad_parameters(threshold: float, timeout: float) -> None:
    with pytest.raises(InvalidParameterException):
        Tracker(iou_threshold=threshold, timeout=timeout)


def test_a_face_missed_for_a_few_frames_and_moving_steadily_keeps_its_track() -> None:
    tracker = Tracker(iou_threshold=0.2, timeout=1.0)
    ids: set[int] = set()
    for step in range(24):
        if 8 <= step < 16:  # eight frames without a detection (head turned): it moved 96 px
            tracker.update([], step / 30)
            continue
        update = tracker.update([face(50 + step * 12, 100, size=60)], step / 30)
        ids.update(a.track_id for a in update.assignments)
    assert ids == {1}
    assert tracker.started == 1


def test_two_people_crossing_are_not_swapped() -> None:
    tracker = Tracker()
    paths: dict[int, list[float]] = {}
    for step in range(12):  # one walks right, one left, 40 px a frame, passing at step 6
        faces = [face(20 + step * 40, 100), face(500 - step * 40, 140)]
        for a in tracker.update(faces, step / 30).assignments:
            paths.setdefault(a.track_id, []).append(a.face.box.left)
    assert len(paths) == 2
    for lefts in paths.values():
        steps = {round(b - a) for a, b in itertools.pairwise(lefts)}
        assert steps in ({40}, {-40}), lefts


def test_appearance_keeps_a_lost_track_from_a_stranger_who_looks_different() -> None:
    red = np.zeros((360, 640, 3), np.uint8)
    red[:, :] = (0, 0, 200)
    blue = red.copy()
    blue[:, 300:] = (200, 0, 0)
    tracker = Tracker()
    tracker.update([face(100, 100, size=60)], 0.0, red)
    tracker.update([], 0.2, red)
    # Someone in blue appears near where the first (in red) was last seen, overlapping less
    # than the threshold: by distance alone they would continue the track.
    stranger = tracker.update([face(300, 100, size=60)], 0.3, blue)
    assert [a.new for a in stranger.assignments] == [True]


def test_appearance_histograms() -> None:
    image = np.random.default_rng(1).integers(0, 255, size=(360, 640, 3), dtype=np.uint8)
    a = appearance(image, PixelBox(100, 100, 160, 160))
    b = appearance(image, PixelBox(102, 101, 162, 161))
    assert a is not None
    assert b is not None
    assert look_alike(a, a) == pytest.approx(1.0)
    assert look_alike(a, b) > 0.8
    assert appearance(image, PixelBox(640, 360, 640, 360)) is None
