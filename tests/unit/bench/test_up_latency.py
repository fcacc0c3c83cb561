"""The pure parts of ``bench.up_latency``: grouping messages into visits (by VisitId, else by
the crop's track) and the first- and final-answer latencies (no broker, no video)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.up_latency import Published, parse_also, per_visit, published

from facelens.storage.local import LocalObjectStore


def body(**fields: object) -> dict[str, object]:
    return {
        "RecognitionId": "r1",
        "Bucket": "facelens",
        "Key": "faces/cam/1.jpg",
        "CapturedAt": "2026-01-01T00:00:10+00:00",
        **fields,
    }


CAPTURED = 1767225610.0  # 2026-01-01T00:00:10Z


def test_a_message_belongs_to_its_visit_else_to_its_crops_track(tmp_path: Path) -> None:
    # The crop as the edge leaves it: in the home's local object store, with its metadata.
    store = LocalObjectStore(tmp_path / "objects")
    store.create_bucket("facelens")
    store.put_object("facelens", "faces/cam/1.jpg", b"jpeg", metadata={"track-id": "7"})
    new = published(body(Status="identified", Name="Ann", VisitId="v1", Revision=2), 11.0, tmp_path)
    assert new == Published("v1", CAPTURED, 11.0, 2, "Ann")
    old = published(body(Status="unknown"), 11.0, tmp_path)
    assert old == Published("track:7", CAPTURED, 11.0, None, None)
    lost = published(body(Status="unknown", Key="gone.jpg"), 11.0, tmp_path)
    assert lost is not None
    assert lost.visit == "message:r1"
    assert published(body(Status="error"), 11.0, tmp_path) is None


def test_first_and_final_answer_latencies_per_visit() -> None:
    answers = [
        # one visit: unknown first (captured at 0, out at 0.08), named at revision 1 (out at 0.9)
        Published("v1", 100.0, 100.08, 0, None),
        Published("v1", 100.5, 100.9, 1, "Ann"),
        # before visits: a track with two messages, by arrival
        Published("track:3", 200.0, 200.5, None, None),
        Published("track:3", 200.6, 201.0, None, None),
    ]
    timings = {t.visit: t for t in per_visit(answers)}
    assert timings["v1"].first_s == pytest.approx(0.08)
    assert timings["v1"].final_s == pytest.approx(0.9)
    assert timings["v1"].changed
    assert timings["track:3"].first_s == pytest.approx(0.5)
    assert timings["track:3"].final_s == pytest.approx(1.0)
    assert not timings["track:3"].changed


def test_another_setting_is_named_by_its_environment() -> None:
    assert parse_also("FACELENS_A=1, FACELENS_B__C=x") == {"FACELENS_A": "1", "FACELENS_B__C": "x"}
    with pytest.raises(ValueError, match="expected FACELENS_NAME=VALUE"):
        parse_also("BEST_OF=0")
