"""The live view: annotation draws where it should (and only on a copy), and the
frame hand-off sends each new frame once, paced, to every viewer, until closed."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np
import pytest

from facelens.edge.types import BGRImage, Frame, TrackedFace
from facelens.edge.view import (
    NAMED_COLOR,
    UNKNOWN_COLOR,
    UNNAMED_COLOR,
    LiveView,
    annotate,
    ascii_text,
    face_label,
)
from facelens.errors import InvalidParameterException
from facelens.values.boxes import PixelBox


def image(width: int = 640, height: int = 360, value: int = 90) -> BGRImage:
    return np.full((height, width, 3), value, dtype=np.uint8)


def frame(index: int = 0, *, width: int = 640, height: int = 360) -> Frame:
    return Frame(
        image=image(width, height, value=index % 200),
        index=index,
        media_time=index / 30.0,
        captured_at=datetime.now(UTC),
        monotonic=time.monotonic(),
    )


def face(
    name: str | None = "alice",
    box: PixelBox | None = None,
    *,
    track_id: int = 7,
    confidence: float = 93.4,
) -> TrackedFace:
    return TrackedFace(
        track_id=track_id,
        box=box if box is not None else PixelBox(200, 120, 300, 240),
        confidence=confidence,
        name=name,
    )


def decode(jpeg: bytes) -> Any:
    decoded = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None, "not a JPEG OpenCV can decode"
    return decoded


# --- annotate -------------------------------------------------------------------------


def test_annotate_returns_a_changed_copy_and_leaves_the_input_alone() -> None:
    original = image()
    before = original.copy()
    out = annotate(original, [face()])
    assert out is not original
    assert out.shape == original.shape
    assert out.dtype == np.uint8
    assert np.array_equal(original, before), "the input must not be drawn on"
    changed = np.any(out != original, axis=2)
    assert changed[120:240, 200:300].any(), "the box is drawn"
    assert not changed[300:, 400:].any(), "nothing far from the face changes"


@pytest.mark.parametrize(
    ("name", "color"),
    [("alice", NAMED_COLOR), (None, UNNAMED_COLOR), ("unknown", UNKNOWN_COLOR)],
)
def test_box_colour_says_whether_the_face_is_named(
    name: str | None, color: tuple[int, int, int]
) -> None:
    out = annotate(image(), [face(name)])
    # left edge of the box, halfway down: plain line pixels (not anti-aliased)
    assert tuple(int(v) for v in out[180, 200]) == color


def test_label_sits_above_the_box() -> None:
    original = image()
    out = annotate(original, [face(box=PixelBox(200, 120, 300, 240))])
    changed = np.any(out != original, axis=2)
    assert changed[100:119, 200:260].any(), "label background above the box"


def test_labels_read_the_track_and_name_or_confidence() -> None:
    assert face_label(face("alice")) == "#7 alice"
    assert face_label(face(None, confidence=93.4)) == "#7 93%"
    assert face_label(face("unknown")) == "#7 unknown"
    assert len(face_label(face("x" * 200))) < 40, "long names are cut"


def test_non_ascii_names_become_drawable() -> None:
    assert ascii_text("José Müller") == "Jose Muller"
    assert ascii_text("李 Ø\n") == "? ??"
    out = annotate(image(), [face("李小龍 José")])
    assert out.shape == (360, 640, 3)


def test_boxes_at_and_beyond_the_frame_edge() -> None:
    original = image()
    top_left = face(box=PixelBox(-20, -10, 100, 80))
    bottom_right = face(box=PixelBox(600, 330, 700, 400), track_id=8, name=None)
    out = annotate(original, [top_left, bottom_right])
    changed = np.any(out != original, axis=2)
    assert changed[0:20, 0:60].any(), "label drawn inside the frame, in the box"
    assert changed[340:, 600:].any()
    outside = annotate(original, [face(box=PixelBox(700, 400, 800, 500))])
    assert np.array_equal(outside, original), "a box wholly outside draws nothing"
    nan = annotate(original, [face(box=PixelBox(float("nan"), 0, 10, 10))])
    assert np.array_equal(nan, original)


def test_lines_grow_with_the_frame() -> None:
    def line_width(width: int, height: int) -> int:
        box = PixelBox(width * 0.3, height * 0.3, width * 0.6, height * 0.7)
        out = annotate(image(width, height, 0), [face(box=box)])
        row = out[int(height * 0.5)]
        return int(np.count_nonzero(np.any(row != 0, axis=1)))

    assert line_width(1920, 1080) > line_width(640, 360)


def test_annotate_refuses_what_is_not_a_bgr_image() -> None:
    with pytest.raises(InvalidParameterException):
        annotate(np.zeros((10, 10), dtype=np.uint8), [])


# --- LiveView ----------------------------------------------------------------------


def test_frames_yields_jpegs_only_for_new_frames() -> None:
    view = LiveView()
    stop = threading.Event()
    stream = view.frames(max_fps=1000, stop=stop, timeout=0.05)
    view.publish(frame(1), [face()])
    first = decode(next(stream))
    assert first.shape == (360, 640, 3)

    got: list[bytes] = []
    done = threading.Event()

    def take() -> None:
        got.extend(stream)  # up to the end, i.e. until stop is set
        done.set()

    threading.Thread(target=take, daemon=True).start()
    assert not done.wait(0.2), "nothing new published: the generator waits"
    assert got == []
    view.publish(frame(2), [])
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    assert done.wait(5), "stop ends the generator"
    assert len(got) == 1, "the second frame, once"
    assert decode(got[0]).shape == (360, 640, 3)


def test_frames_are_paced_to_max_fps() -> None:
    view = LiveView()
    stop = threading.Event()
    sent: list[bytes] = []
    view.publish(frame(0), [])

    def watch() -> None:
        sent.extend(view.frames(max_fps=5, stop=stop, timeout=0.05))

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    watcher.start()
    for index in range(1, 101):  # ~0.5 s of frames at ~200 fps
        view.publish(frame(index), [])
        time.sleep(0.005)
    stop.set()
    watcher.join(5)
    elapsed = time.monotonic() - started
    assert not watcher.is_alive()
    assert 1 <= len(sent) <= 1 + elapsed * 5 + 1, (len(sent), elapsed)


def test_viewers_are_counted_while_their_generators_run() -> None:
    view = LiveView()
    view.publish(frame(0), [face()])
    assert view.viewers == 0
    one = view.frames(max_fps=30)
    two = view.frames(max_fps=30)
    assert view.viewers == 0, "counted from the first next(), not on creation"
    next(one)
    next(two)
    assert view.viewers == 2
    one.close()
    assert view.viewers == 1
    two.close()
    assert view.viewers == 0


def test_close_ends_every_waiting_generator() -> None:
    view = LiveView()
    ended = threading.Event()
    count: list[int] = []

    def watch() -> None:
        count.append(sum(1 for _ in view.frames(max_fps=10, timeout=30)))
        ended.set()

    threading.Thread(target=watch, daemon=True).start()
    deadline = time.monotonic() + 5
    while view.viewers == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert view.viewers == 1
    view.close()
    assert ended.wait(5), "close wakes the generator though its timeout is 30 s"
    assert count == [0]
    assert view.viewers == 0
    assert list(view.frames(max_fps=10)) == [], "after close, generators end at once"


def test_latest_jpeg_is_none_until_a_frame_is_published() -> None:
    view = LiveView(jpeg_quality=80)
    assert view.latest_jpeg() is None
    view.publish(frame(3, width=1920, height=1080), [face("bob")])
    jpeg = view.latest_jpeg()
    assert jpeg is not None
    assert decode(jpeg).shape == (1080, 1920, 3)
    assert view.latest_jpeg() is jpeg, "one encoding per published frame"


def test_bad_arguments_are_refused_at_once() -> None:
    view = LiveView()
    with pytest.raises(InvalidParameterException):
        view.frames(max_fps=0)
    with pytest.raises(InvalidParameterException):
        view.frames(max_fps=5, timeout=0)
    with pytest.raises(InvalidParameterException):
        LiveView(jpeg_quality=0)
