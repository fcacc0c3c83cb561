"""Sources: what users type becomes the right spec, and OpenCV errors become clear facelens ones."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from facelens.edge.sources import (
    OpenCvSource,
    SourceKind,
    SourceSpec,
    open_source,
    parse_source,
)
from facelens.errors import (
    InvalidImageFormatException,
    InvalidParameterException,
    ResourceNotFoundException,
    SourceUnavailableException,
)
from tests.servers._common import free_port


@pytest.fixture
def hamilton(testdata: Path) -> Path:
    return testdata / "video" / "short_hamilton_clip.mp4"


# ---- parse_source ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "index"), [("0", 0), ("2", 2), (" 1 ", 1)])
def test_digits_are_a_webcam(text: str, index: int) -> None:
    spec = parse_source(text)
    assert spec == SourceSpec(SourceKind.WEBCAM, index)
    assert spec.live
    assert spec.describe() == f"webcam {index}"


def test_a_path_is_a_file() -> None:
    spec = parse_source("videos/clip 1.mp4")
    assert spec == SourceSpec(SourceKind.FILE, "videos/clip 1.mp4")
    assert not spec.live
    assert spec.describe() == "videos/clip 1.mp4"


def test_a_file_url_is_a_file_path() -> None:
    spec = parse_source("file:///data/my%20clip.mp4")
    assert spec == SourceSpec(SourceKind.FILE, "/data/my clip.mp4")
    assert not spec.live


def test_a_file_url_on_another_host_is_refused() -> None:
    with pytest.raises(InvalidParameterException, match="only local files"):
        parse_source("file://nas/data/clip.mp4")


def test_rtsp_is_a_stream_and_its_password_is_redacted() -> None:
    url = "rtsp://admin:s3cret@10.0.0.7:554/Streaming/Channels/101"
    spec = parse_source(url)
    assert spec == SourceSpec(SourceKind.STREAM, url)
    assert spec.live
    assert spec.describe() == "rtsp://admin:***@10.0.0.7:554/Streaming/Channels/101"
    assert "s3cret" not in spec.describe()


def test_a_password_in_the_query_is_redacted() -> None:
    spec = parse_source("http://cam.local/video.cgi?user=admin&pwd=s3cret")
    assert spec.describe() == "http://cam.local/video.cgi?user=admin&pwd=***"


@pytest.mark.parametrize(
    "url",
    [
        "http://cam.local/video.mjpg",
        "HTTPS://cam.local/live",
        "rtsps://cam.local/live",
        "rtmp://cam.local/app/key",
        "udp://239.0.0.1:1234",
        "tcp://10.0.0.7:5000",
    ],
)
def test_stream_schemes(url: str) -> None:
    spec = parse_source(url)
    assert spec.kind is SourceKind.STREAM
    assert spec.target == url
    assert spec.describe() == url  # nothing to redact


def test_a_user_without_password_is_shown_as_is() -> None:
    assert parse_source("rtsp://viewer@cam/live").describe() == "rtsp://viewer@cam/live"


def test_an_unknown_scheme_names_the_accepted_ones() -> None:
    with pytest.raises(InvalidParameterException) as caught:
        parse_source("ftp://user:pw@host/clip.mp4")
    message = caught.value.message
    assert "ftp://" in message
    assert "rtsp://" in message
    assert "http://" in message
    assert "pw@" not in message
    assert caught.value.code == "InvalidParameterException"


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_source_is_refused(text: str) -> None:
    with pytest.raises(InvalidParameterException, match="empty"):
        parse_source(text)


def test_a_stream_url_needs_a_host() -> None:
    with pytest.raises(InvalidParameterException, match="no host"):
        parse_source("rtsp:///live")


def test_specs_check_their_target() -> None:
    with pytest.raises(InvalidParameterException):
        SourceSpec(SourceKind.WEBCAM, "0")
    with pytest.raises(InvalidParameterException):
        SourceSpec(SourceKind.WEBCAM, -1)
    with pytest.raises(InvalidParameterException):
        SourceSpec(SourceKind.FILE, "")


# ---- OpenCvSource on real files ----------------------------------------------------------


def test_a_real_file_opens_reads_and_ends(hamilton: Path) -> None:
    source = open_source(parse_source(str(hamilton)))
    try:
        info = source.open()
        assert (info.width, info.height) == (640, 360)
        assert info.fps == pytest.approx(29.97, abs=0.01)
        assert not info.live
        assert info.description == str(hamilton)

        positions: list[float] = []
        count = 0
        while (image := source.read()) is not None:
            assert image.shape == (360, 640, 3)
            assert image.dtype == np.uint8
            position = source.position_seconds()
            assert position is not None
            positions.append(position)
            count += 1
        assert count == 275
        assert positions[0] == pytest.approx(0.0)
        assert positions[1] == pytest.approx(1 / 29.97, abs=1e-3)
        assert positions == sorted(positions)
        assert positions[-1] == pytest.approx(274 / 29.97, abs=0.01)
        assert source.read() is None  # stays at the end
    finally:
        source.close()
    source.close()  # idempotent


def test_the_first_frame_read_by_open_is_not_lost(hamilton: Path) -> None:
    source = OpenCvSource(parse_source(str(hamilton)))
    source.open()
    try:
        first = source.read()
        assert first is not None
        assert source.position_seconds() == pytest.approx(0.0)
        second = source.read()
        assert second is not None
        assert not np.array_equal(first, second)
    finally:
        source.close()


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    source = OpenCvSource(parse_source(str(tmp_path / "nope.mp4")))
    with pytest.raises(ResourceNotFoundException, match="does not exist") as caught:
        source.open()
    assert caught.value.code == "ResourceNotFoundException"


def test_a_zero_byte_file_is_not_a_video(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageFormatException, match="not a video OpenCV can decode"):
        OpenCvSource(parse_source(str(empty))).open()


def test_a_text_file_named_mp4_is_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "x.mp4"
    text.write_text("this is not a video\n" * 100)
    with pytest.raises(
        InvalidImageFormatException, match="not a video OpenCV can decode"
    ) as caught:
        OpenCvSource(parse_source(str(text))).open()
    assert caught.value.code == "InvalidImageFormatException"


def test_a_stream_nobody_serves_is_unavailable_quickly() -> None:
    url = f"http://viewer:s3cret@127.0.0.1:{free_port()}/video.mjpg"
    source = OpenCvSource(parse_source(url), timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailableException) as caught:
        source.open()
    assert time.monotonic() - started < 5.0
    assert caught.value.code == "SourceUnavailableException"
    assert "viewer:***@127.0.0.1" in caught.value.message
    assert "s3cret" not in caught.value.message


def test_a_bad_timeout_is_refused() -> None:
    with pytest.raises(InvalidParameterException):
        OpenCvSource(parse_source("0"), timeout_seconds=0)
