"""`facelens profiles|objects|recognizer` as a user runs them: real processes, JSON out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli import error, facelens, out

FACE = "11111111-2222-4333-8444-555555555555"


def test_profiles_put_get_list_delete(cli_env: dict[str, str]) -> None:
    put = out(
        facelens(
            "profiles",
            "put",
            "obama",
            "--attr",
            "Name=Barack Obama",
            "--attr",
            "Terms:=[2009, 2013]",
            env=cli_env,
        )
    )
    assert put == {"UserId": "obama", "Name": "Barack Obama", "Terms": [2009, 2013]}
    typed = json.dumps({"FaceId": {"S": FACE}, "Bio": {"S": "Photographer"}, "Age": {"N": "41"}})
    assert out(facelens("profiles", "put", "--item", typed, env=cli_env)) == {
        "FaceId": FACE,
        "Bio": "Photographer",
        "Age": 41,
    }
    merged = out(facelens("profiles", "put", FACE, "--attr", "Role=Guest", "--merge", env=cli_env))
    assert merged == {"FaceId": FACE, "Bio": "Photographer", "Age": 41, "Role": "Guest"}
    got = out(facelens("profiles", "get", FACE, "--dynamodb", env=cli_env))
    assert got["Item"]["Age"] == {"N": "41"}
    assert got["Item"]["FaceId"] == {"S": FACE}
    listed = out(facelens("profiles", "list", "--max-results", "1", env=cli_env))
    assert [i.get("FaceId") or i.get("UserId") for i in listed["Items"]] == [FACE]
    assert "NextToken" in listed
    rest = out(facelens("profiles", "list", "--next-token", listed["NextToken"], env=cli_env))
    assert [i["UserId"] for i in rest["Items"]] == ["obama"]
    assert out(facelens("profiles", "delete", "obama", env=cli_env)) == {}
    gone = error(facelens("profiles", "get", "obama", env=cli_env, check=False))
    assert gone["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    "args",
    [
        ["put", "anna", "--attr", "no-equals-sign"],
        ["put", "anna", "--attr", "Age:=not json"],
        ["put", "--item", "{not json"],
        ["put", "--item", '{"Bio": {"X": "bad type"}}'],
        ["put", "--attr", "Bio=no id anywhere"],
        ["list", "--next-token", "garbage"],
    ],
)
def test_profile_errors_are_aws_shaped(cli_env: dict[str, str], args: list[str]) -> None:
    assert error(facelens("profiles", *args, env=cli_env, check=False))["Code"] == (
        "InvalidParameterException"
    )


def test_put_a_crop_then_drain_the_recognizer(
    cli_env: dict[str, str], testdata: Path, tmp_path: Path
) -> None:
    people = testdata / "people"
    facelens("collections", "create", "--collection-id", "faces", env=cli_env)
    indexed = out(
        facelens(
            "faces",
            "index",
            str(people / "obama/obama_1.jpg"),
            "--collection-id",
            "faces",
            "--external-image-id",
            "obama_1.jpg",
            env=cli_env,
        )
    )
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    facelens("profiles", "put", face_id, "--attr", "Name=Barack Obama", env=cli_env)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not a jpeg")
    uploads = [
        (people / "obama/obama_2.jpg", "faces/11_26/10_30/1_0.jpg"),
        (people / "biden/biden_1.jpg", "faces/11_26/10_30/2_0.jpg"),
        (corrupt, "faces/11_26/10_30/3_0.jpg"),
        (people / "obama/obama_3.jpg", "snapshots/not-a-crop.jpg"),
    ]
    for path, key in uploads:
        # The first is a look of a visit (as an edge runner uploads it); the others are not.
        visit = ["--metadata", "visit-id=porch-1"] if key.endswith("/1_0.jpg") else []
        put = out(
            facelens(
                "objects", "put", str(path), key, "--metadata", "thing=porch", *visit, env=cli_env
            )
        )
        assert put["Key"] == key
    listed = out(facelens("objects", "list", "--prefix", "faces/", env=cli_env))
    assert [o["Key"] for o in listed["Contents"]] == [k for _, k in uploads[:3]]
    head = out(facelens("objects", "head", "faces/11_26/10_30/1_0.jpg", env=cli_env))
    assert head["Metadata"] == {"thing": "porch", "visit-id": "porch-1"}

    stats = out(facelens("recognizer", "--drain", env=cli_env))
    assert stats == {
        "Events": 3,
        "Identified": 1,
        "Unknown": 1,
        "DeadLetters": 1,
        "Duplicates": 0,
        "Skipped": 0,
        "Retried": 0,
    }
    shown = out(facelens("recognizer", "recent", env=cli_env))
    # One row per visit, its current answer; crops without a visit are no visit.
    [visit] = shown["Visits"]
    assert (visit["VisitId"], visit["Camera"], visit["Who"]) == ("porch-1", "porch", "Barack Obama")
    assert (visit["Revision"], visit["Looks"], visit["Status"]) == (0, 1, "identified")
    recent = shown["Recognitions"]
    by_key = {r["Message"]["Key"]: r for r in recent}
    seen = by_key["faces/11_26/10_30/1_0.jpg"]
    assert seen["Topic"] == "rekognition"
    assert seen["Message"]["Name"] == "Barack Obama"
    assert seen["Message"]["FaceId"] == face_id
    assert seen["Message"]["Camera"] == "porch"
    assert by_key["faces/11_26/10_30/2_0.jpg"]["Topic"] == "rekognition/unknown"
    dead = out(facelens("recognizer", "dead-letters", env=cli_env))["DeadLetters"]
    assert [d["Message"]["Error"]["Code"] for d in dead] == ["InvalidImageFormatException"]
    # Nothing is left to do: a second drain handles no event and publishes nothing twice.
    again = out(facelens("recognizer", "--drain", env=cli_env))
    assert again["Events"] == 0
    # Forgetting the person removes faces, profile, the crops that named them and the records.
    facelens("users", "create", "--collection-id", "faces", "--user-id", "obama", env=cli_env)
    facelens(
        "users",
        "associate",
        "--collection-id",
        "faces",
        "--user-id",
        "obama",
        "--face-ids",
        face_id,
        env=cli_env,
    )
    forgotten = out(
        facelens(
            "users",
            "delete",
            "--collection-id",
            "faces",
            "--user-id",
            "obama",
            "--delete-faces",
            env=cli_env,
        )
    )
    assert forgotten == {  # the one shape every forgetting answers with
        "Person": "obama",
        "Kind": "user",
        "CollectionId": "faces",
        "DeletedUser": "obama",
        "DeletedFaces": [face_id],
        "DeletedStrangerFaces": [],
        "DeletedNegatives": [],
        "DeletedProfiles": [face_id],
        "DeletedCrops": ["faces/11_26/10_30/1_0.jpg"],
        "DeletedRecords": 1,
        "DeletedVisits": 1,
        "FormerStrangerIds": [],
        "Purged": True,
    }
    missing = error(
        facelens("objects", "head", "faces/11_26/10_30/1_0.jpg", env=cli_env, check=False)
    )
    assert missing["Code"] == "NoSuchKey"
    assert error(facelens("profiles", "get", face_id, env=cli_env, check=False))["Code"] == (
        "ResourceNotFoundException"
    )
    shown = out(facelens("recognizer", "recent", env=cli_env))
    assert "faces/11_26/10_30/1_0.jpg" not in {
        r["Message"].get("Key") for r in shown["Recognitions"]
    }
    assert shown["Visits"] == []
