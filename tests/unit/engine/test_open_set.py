"""The open-set calibration: interpolation in gallery size and rate, its files, the score."""

from __future__ import annotations

import math

import pytest

from facelens.engine import open_set
from facelens.engine.open_set import Calibration, calibration_for, cohort_weight, open_set_score
from facelens.errors import ConfigurationError

LEVELS = (0.1, 0.01, 0.001)


def table() -> Calibration:
    """Two sizes, three levels: thresholds rise with size and as the rate falls."""
    return Calibration(
        model_version="test-model",
        gallery_sizes=(1, 100),
        fpir_levels=LEVELS,
        thresholds=((-0.5, -0.4, -0.3), (-0.3, -0.2, -0.1)),
        strangers=(1000, 1000),
        source="made up for the test",
        fnir_one_photo=((0.05, 0.1, 0.2), (0.1, 0.2, 0.4)),
        fnir_several_photos=((0.01, 0.02, 0.05), (0.02, 0.05, 0.1)),
    )


def test_measured_points_are_read_back_exactly() -> None:
    c = table()
    assert c.threshold(1, 0.01) == pytest.approx(-0.4)
    assert c.threshold(100, 0.001) == pytest.approx(-0.1)
    assert c.expected_fpir(-0.4, 1) == pytest.approx(0.01)
    assert c.expected_fpir(-0.2, 100) == pytest.approx(0.01)


def test_sizes_interpolate_in_log_size_and_extrapolate_beyond_the_largest() -> None:
    c = table()
    assert c.threshold(10, 0.01) == pytest.approx(-0.3)  # halfway in log size
    assert c.threshold(1000, 0.01) == pytest.approx(-0.1)  # one more decade, same slope
    assert c.threshold(0, 0.01) == c.threshold(1, 0.01)
    assert c.largest_measured == 100


def test_rates_interpolate_in_log_rate_and_are_the_inverse_of_thresholds() -> None:
    c = table()
    between = c.threshold(1, math.sqrt(0.1 * 0.01))
    assert between == pytest.approx(-0.45)
    for size in (1, 7, 100, 300):
        for rate in (0.08, 0.01, 0.003, 0.001):
            assert c.expected_fpir(c.threshold(size, rate), size) == pytest.approx(rate)


def test_expected_fpir_falls_as_the_score_rises_and_is_clamped_to_what_was_measured() -> None:
    c = table()
    scores = [-0.9, -0.5, -0.45, -0.4, -0.35, -0.3, 0.2]
    rates = [c.expected_fpir(s, 1) for s in scores]
    assert rates == sorted(rates, reverse=True)
    assert rates[0] == 0.1
    assert rates[-1] == 0.001


def test_a_rate_outside_the_calibrated_range_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="outside the calibrated range"):
        table().threshold(10, 0.0001)


def test_expected_fnir_reads_the_one_photo_and_several_photo_tables() -> None:
    c = table()
    assert c.expected_fnir(1, 0.01, several_photos=False) == pytest.approx(0.1)
    assert c.expected_fnir(100, 0.01, several_photos=True) == pytest.approx(0.05)
    bare = Calibration("m", (1, 2), (0.1, 0.01), ((-0.5, -0.4), (-0.4, -0.3)), (1, 1), "")
    assert bare.expected_fnir(1, 0.01, several_photos=False) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gallery_sizes": (100, 1)}, "ascend"),
        ({"fpir_levels": (0.001, 0.01, 0.1)}, "descend"),
        ({"fpir_levels": (1.0, 0.01, 0.001)}, "between 0 and 1"),
        ({"thresholds": ((-0.5, -0.4, -0.3),)}, "one threshold per size"),
        ({"thresholds": ((-0.5, -0.6, -0.3), (-0.3, -0.2, -0.1))}, "must ascend"),
        ({"fnir_one_photo": ((0.1,),)}, "one FNIR per size"),
    ],
)
def test_an_inconsistent_table_is_refused(change: dict[str, object], message: str) -> None:
    fields = table().__dict__ | change
    with pytest.raises(ConfigurationError, match=message):
        Calibration(**fields)


def test_people_enrolled_from_several_photos_give_up_their_offset() -> None:
    c = Calibration(**(table().__dict__ | {"several_photos_offset": (0.02, 0.04)}))
    assert c.person_offset(1, 1) == 0.0
    assert c.person_offset(1, 3) == pytest.approx(0.02)
    assert c.person_offset(10, 2) == pytest.approx(0.03)  # halfway in log size
    assert table().person_offset(100, 3) == 0.0  # not measured: nothing taken off
    with pytest.raises(ConfigurationError, match="several-photo offset"):
        Calibration(**(table().__dict__ | {"several_photos_offset": (0.02,)}))


def test_json_round_trip_and_bad_files() -> None:
    c = Calibration(**(table().__dict__ | {"several_photos_offset": (0.02, 0.04)}))
    assert Calibration.from_json(c.to_json()) == c
    with pytest.raises(ConfigurationError, match="unknown format"):
        Calibration.from_json({"format": 99})
    broken = c.to_json()
    del broken["thresholds"]
    with pytest.raises(ConfigurationError, match="calibration file"):
        Calibration.from_json(broken)


@pytest.mark.parametrize(
    "version", ["dlib-resnet-v1", "dlib-resnet-v1+68", "dlib-resnet-v1-chip68"]
)
def test_the_shipped_calibrations_load_and_bound_what_they_promise(version: str) -> None:
    c = calibration_for(version)
    assert c is not None
    assert c.model_version == version
    assert c.largest_measured >= 1000
    bound = open_set.BOUND_MARGIN * 0.01
    # A bigger gallery needs a higher score for the same share of strangers (until the
    # cohort term takes over the scale, so compare within the weight-0 sizes and the others).
    assert c.threshold(1, bound) < c.threshold(10, bound)
    assert c.threshold(100, bound) < c.threshold(1000, bound)
    assert c.fnir_one_photo
    assert c.fnir_several_photos
    # Strangers come closer to a template than to one photo: a positive offset everywhere.
    assert c.several_photos_offset
    assert c.person_offset(10, 3) > 0
    assert all(c.person_offset(n, 3) >= 0 for n in (1, 10, 100, 1000, 5000))
    one = c.expected_fnir(746, bound, several_photos=False)
    several = c.expected_fnir(746, bound, several_photos=True)
    assert one is not None
    assert several is not None
    assert several < one


def test_a_model_never_measured_has_no_calibration() -> None:
    assert calibration_for("arcface:w600k_r50.onnx:0123456789ab:rgb:127.5:127.5") is None


def test_the_cohort_counts_only_in_galleries_over_ten_people() -> None:
    assert cohort_weight(1) == cohort_weight(10) == 0.0
    assert cohort_weight(100) == pytest.approx(0.5)
    assert cohort_weight(10_000) == 1.0
    assert open_set_score(0.3, probe_cohort=0.6, person_cohort=0.5, gallery_size=10) == -0.3
    assert open_set_score(0.3, probe_cohort=0.6, person_cohort=0.5, gallery_size=100) == (
        pytest.approx(0.5 * 0.55 - 0.3)
    )
    # A missing cohort (too few people) leaves the other; none leaves the distance.
    assert open_set_score(0.3, probe_cohort=0.6, person_cohort=None, gallery_size=100) == (
        pytest.approx(0.5 * 0.6 - 0.3)
    )
    assert open_set_score(0.3, probe_cohort=None, person_cohort=None, gallery_size=100) == -0.3
