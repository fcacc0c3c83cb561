"""The visit benchmarks' parts that touch real things: the video ``bench.visits`` renders (real
photos, OpenCV writing and reading it back) and ``bench.visit_fusion``'s offline rule with the
engine's shipped calibration."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from bench.visit_fusion import Gallery, Hysteresis, follow_visit, named, unit_mean
from bench.visits import FRAME_SIZE, plan_visits, render

from facelens.config import Settings
from facelens.engine.open_set import BOUND_MARGIN, calibration_for
from facelens.engine.registry import build_engine


def test_the_video_shows_each_visit_in_its_window_and_nothing_between(
    tmp_path: Path, testdata: Path
) -> None:
    people = testdata / "people"
    photos = {
        d.name: sorted(str(p) for p in d.iterdir() if p.suffix in (".jpg", ".png"))
        for d in sorted(people.iterdir())
        if d.is_dir()
    }
    photos = {name: ps for name, ps in photos.items() if len(ps) >= 3}
    plan = plan_visits(photos, enrolled=1, strangers=1, gallery=2, looks=2, seed=0, fps=5.0)
    video = tmp_path / "visits.avi"
    frames = render(plan, video)
    assert frames == math.ceil(plan.duration_s * plan.fps)

    capture = cv2.VideoCapture(str(video))
    read: list[np.ndarray] = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        read.append(frame)
    capture.release()
    assert len(read) == frames
    assert read[0].shape[:2] == (FRAME_SIZE[1], FRAME_SIZE[0])
    for i, frame in enumerate(read):
        t = i / plan.fps
        showing = any(v.start_s <= t < v.end_s for v in plan.visits)
        spread = float(frame.astype(np.int16).std())  # a plain grey frame is flat (JPEG noise)
        assert (spread > 10) == showing, f"frame {i} at {t:.1f} s"


@pytest.fixture
def rule(settings: Settings) -> tuple[Gallery, np.ndarray, float]:
    calibration = calibration_for(build_engine(settings).model_version)
    assert calibration is not None, "the default engine ships a calibration"
    rng = np.random.default_rng(0)
    people = rng.normal(size=(20, 128)).astype(np.float32)
    people /= np.linalg.norm(people, axis=1, keepdims=True)
    names = [f"p{i:02d}" for i in range(20)]
    gallery = Gallery(names, dict(zip(names, people, strict=True)), calibration)
    return gallery, people, BOUND_MARGIN * settings.recognizer.max_false_identification_rate


def test_the_offline_rule_names_an_enrolled_face_and_not_a_far_one(
    rule: tuple[Gallery, np.ndarray, float],
) -> None:
    gallery, people, bound = rule
    rng = np.random.default_rng(1)
    own = people[3]
    stranger = unit_mean(rng.normal(size=(1, 128)).astype(np.float32))
    steps = gallery.steps(gallery.distances(np.stack([own, stranger])))
    assert named(steps[0], bound) == 3
    assert named(steps[1], bound) == -1
    # A visit that starts as the stranger and then shows p03 for sure is revised to p03.
    setting = Hysteresis("embedding_mean", revise_factor=0.5, keep_factor=4.0)
    assert follow_visit([steps[1], steps[0]], bound, setting).final == 3
