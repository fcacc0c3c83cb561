"""What describe says of the rule, in JSON and in words, for each state a collection can be in."""

from __future__ import annotations

from dataclasses import replace

from facelens.people.matching import RuleSummary
from facelens.rendering.rule import rule_json, rule_sentences

OPEN = RuleSummary(
    collection_id="faces",
    face_model_version="dlib-resnet-v1+68",
    gallery_size=746,
    one_photo_people=40,
    one_photo_user_ids=("ada", "bob"),
    rule="open-set",
    calibrated=True,
    max_false_identification_rate=0.01,
    expected_fpir=0.005,
    expected_fnir=0.2312,
)


def test_open_set_in_words() -> None:
    assert rule_sentences(OPEN) == [
        "Rule open-set: at most 1 in 200 strangers is given a name (bound 1%).",
        "About 23% of enrolled people's photos go unnamed; "
        "40 people have one photo: enrol two more of each.",
    ]


def test_small_rates_and_one_person() -> None:
    summary = replace(
        OPEN,
        max_false_identification_rate=0.002,
        expected_fpir=0.001,
        expected_fnir=0.061,
        one_photo_people=1,
    )
    assert rule_sentences(summary) == [
        "Rule open-set: at most 1 in 1,000 strangers is given a name (bound 0.2%).",
        "About 6.1% of enrolled people's photos go unnamed; "
        "1 person has one photo: enrol two more of each.",
    ]


def test_nothing_to_add_when_unmeasured_and_everyone_has_photos() -> None:
    summary = replace(OPEN, expected_fnir=None, one_photo_people=0, one_photo_user_ids=())
    assert rule_sentences(summary) == [
        "Rule open-set: at most 1 in 200 strangers is given a name (bound 1%)."
    ]


def test_an_empty_collection() -> None:
    empty = replace(
        OPEN,
        gallery_size=0,
        one_photo_people=0,
        one_photo_user_ids=(),
        expected_fpir=None,
        expected_fnir=None,
    )
    assert rule_sentences(empty) == [
        "Rule open-set: nobody is enrolled yet (bound 1% of strangers named)."
    ]


def test_an_uncalibrated_engine_says_why_the_similarity_rule_decides() -> None:
    summary = replace(
        OPEN,
        rule="similarity",
        calibrated=False,
        face_model_version="arcface-x",
        expected_fpir=None,
        expected_fnir=None,
    )
    [first, second] = rule_sentences(summary)
    assert first.startswith("Rule similarity: face model arcface-x has no open-set calibration")
    assert "(746 now)" in first
    assert second == "40 people have one photo: enrol two more of each."
    shaped = rule_json(summary)
    assert shaped["Name"] == "similarity"
    assert shaped["Calibrated"] is False
    assert shaped["MaxFalseIdentificationRate"] is None  # nothing bounds it


def test_json_fields() -> None:
    assert rule_json(OPEN) == {
        "Name": "open-set",
        "Calibrated": True,
        "MaxFalseIdentificationRate": 0.01,
        "ExpectedFPIR": 0.005,
        "ExpectedFNIR": 0.2312,
        "People": 746,
        "OnePhotoPeople": 40,
        "OnePhotoUserIds": ["ada", "bob"],
        "Summary": " ".join(rule_sentences(OPEN)),
    }
