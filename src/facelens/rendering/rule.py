"""JSON and sentences for the identification rule: REST, CLI and dashboard say the same.

``Rule`` objects use the API's capitalised field names. Rates are shares (0-1), as
the settings hold them; the sentences turn them into "1 in 200" and percentages,
which is how a person reads a risk.
"""

from __future__ import annotations

from typing import Any

from facelens.config import RecognizerSettings
from facelens.people.identify import FaceAnswer, PhotoAnswer, RuleInForce
from facelens.people.matching import MatchPolicy, RuleSummary, open_set_rule, summarise
from facelens.rendering import rekognition_json

Json = dict[str, Any]


def _percent(share: float) -> str:
    """0.01 -> "1%", 0.005 -> "0.5%", 0.2345 -> "23%": two significant digits at most."""
    value = share * 100
    return f"{value:.0f}%" if value >= 10 else f"{value:.2g}%"


def _one_in(share: float) -> str:
    """0.005 -> "1 in 200": how often, for a rate well below one."""
    return f"1 in {round(1 / share):,}"


def rule_sentences(summary: RuleSummary) -> list[str]:
    """Two sentences at most: how often a stranger gets a name, then how often an enrolled
    person does not and who to enrol more photos of (absent when nothing is known)."""
    people = summary.gallery_size
    if summary.rule == "open-set":
        bound = _percent(summary.max_false_identification_rate)
        if summary.expected_fpir is None:
            first = f"Rule open-set: nobody is enrolled yet (bound {bound} of strangers named)."
        else:
            first = (
                f"Rule open-set: at most {_one_in(summary.expected_fpir)} strangers is given a "
                f"name (bound {bound})."
            )
    elif not summary.calibrated:
        first = (
            f"Rule similarity: face model {summary.face_model_version} has no open-set "
            "calibration, so FaceMatchThreshold decides, and the more people are enrolled "
            f"({people} now) the more strangers get a name."
        )
    else:
        first = (
            "Rule similarity (recognizer.rule): FaceMatchThreshold decides, and the more people "
            f"are enrolled ({people} now) the more strangers get a name."
        )
    rest: list[str] = []
    if summary.expected_fnir is not None and people:
        rest.append(
            f"about {_percent(summary.expected_fnir)} of enrolled people's photos go unnamed"
        )
    one = summary.one_photo_people
    if one:
        who = "person has" if one == 1 else "people have"
        rest.append(f"{one} {who} one photo: enrol two more of each")
    if not rest:
        return [first]
    second = "; ".join(rest)
    return [first, second[0].upper() + second[1:] + "."]


def rule_json(summary: RuleSummary) -> Json:
    """A collection's ``Rule``: the figures of :class:`RuleSummary` and its sentences.
    ``MaxFalseIdentificationRate`` is null under the similarity rule (nothing bounds it)."""
    open_set = summary.rule == "open-set"
    return {
        "Name": summary.rule,
        "Calibrated": summary.calibrated,
        "MaxFalseIdentificationRate": summary.max_false_identification_rate if open_set else None,
        "ExpectedFPIR": summary.expected_fpir,
        "ExpectedFNIR": summary.expected_fnir,
        "People": summary.gallery_size,
        "OnePhotoPeople": summary.one_photo_people,
        "OnePhotoUserIds": list(summary.one_photo_user_ids),
        "Summary": " ".join(rule_sentences(summary)),
    }


def describe_json(policy: MatchPolicy, recognizer: RecognizerSettings, collection_id: str) -> Json:
    """DescribeCollection's JSON and its ``Rule`` under the recognizer's settings, for
    ``GET /collections/{id}`` and ``facelens collections describe`` alike (blocking: reads
    every user once)."""
    out = rekognition_json.describe_collection(
        policy.collections.describe_collection(collection_id)
    )
    out["Rule"] = rule_json(summarise(policy, collection_id, open_set_rule(recognizer)))
    return out


def _bounding_box(answer: FaceAnswer) -> Json:
    box = answer.box
    return {"Width": box.width, "Height": box.height, "Left": box.left, "Top": box.top}


def _face(answer: FaceAnswer) -> Json:
    who = answer.identity
    if who is None:
        return {"BoundingBox": _bounding_box(answer), "Unknown": {"StrangerId": answer.stranger_id}}
    person = {
        "UserId": who.user_id,
        "FaceId": who.face_id,
        "ExternalImageId": who.external_image_id,
        "Profile": None if answer.profile is None else dict(answer.profile),
        "Similarity": who.similarity,
        "ExpectedFPIR": who.expected_fpir,
        "GallerySize": who.gallery_size,
    }
    return {"BoundingBox": _bounding_box(answer), "Person": person}


def rule_in_force_json(rule: RuleInForce) -> Json:
    return {
        "Name": rule.name,
        "MaxFalseIdentificationRate": rule.max_false_identification_rate,
        "FaceMatchThreshold": rule.face_match_threshold,
    }


def identify_json(answer: PhotoAnswer) -> Json:
    """``POST /collections/{id}/identify``'s body: ``Faces`` largest first, and ``Rule``."""
    return {"Faces": [_face(f) for f in answer.faces], "Rule": rule_in_force_json(answer.rule)}
