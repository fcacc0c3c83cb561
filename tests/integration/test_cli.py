"""The `facelens` command as a user runs it: a real process, JSON out, AWS-style errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ERROR_EXIT = 254


def facelens(
    *args: str, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "facelens", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"facelens {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def out(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def error(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == ERROR_EXIT, done.stderr
    document = json.loads(done.stderr.strip().splitlines()[-1])
    found: dict[str, str] = document["Error"]
    return found


def test_collections_faces_and_search_end_to_end(cli_env: dict[str, str], testdata: Path) -> None:
    created = out(facelens("collections", "create", "--collection-id", "friends", env=cli_env))
    assert created["StatusCode"] == 200
    assert created["CollectionArn"].endswith("collection/friends")

    indexed = out(
        facelens(
            "faces",
            "index",
            str(testdata / "people/obama/obama_1.jpg"),
            "--collection-id",
            "friends",
            "--external-image-id",
            "obama",
            env=cli_env,
        )
    )
    record = indexed["FaceRecords"][0]
    face_id = record["Face"]["FaceId"]
    assert record["Face"]["ExternalImageId"] == "obama"
    assert {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"} <= set(
        record["FaceDetail"]
    )
    assert [lm["Type"] for lm in record["FaceDetail"]["Landmarks"]] == [
        "eyeLeft",
        "eyeRight",
        "nose",
        "mouthLeft",
        "mouthRight",
    ]

    found = out(
        facelens(
            "faces",
            "search",
            f"fileb://{testdata / 'people/obama/obama_2.jpg'}",
            "--collection-id",
            "friends",
            env=cli_env,
        )
    )
    assert found["FaceMatches"][0]["Face"]["FaceId"] == face_id
    assert found["FaceMatches"][0]["Similarity"] >= 80
    assert set(found["SearchedFaceBoundingBox"]) == {"Width", "Height", "Left", "Top"}

    described = out(facelens("collections", "describe", "--collection-id", "friends", env=cli_env))
    assert described["FaceCount"] == 1
    assert out(facelens("collections", "list", env=cli_env))["CollectionIds"] == ["friends"]

    by_id = out(
        facelens(
            "faces", "search-by-id", "--collection-id", "friends", "--face-id", face_id, env=cli_env
        )
    )
    assert by_id["SearchedFaceId"] == face_id
    assert by_id["FaceMatches"] == []

    listed = out(facelens("faces", "list", "--collection-id", "friends", env=cli_env))
    assert [f["FaceId"] for f in listed["Faces"]] == [face_id]

    deleted = out(
        facelens(
            "faces", "delete", "--collection-id", "friends", "--face-ids", face_id, env=cli_env
        )
    )
    assert deleted["DeletedFaces"] == [face_id]
    assert out(facelens("collections", "delete", "--collection-id", "friends", env=cli_env)) == {
        "StatusCode": 200
    }


def test_enrol_a_folder_with_one_user_per_sub_folder(
    cli_env: dict[str, str], testdata: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    (photos / "obama").mkdir(parents=True)
    (photos / "biden").mkdir()
    for name in ("obama_1.jpg", "obama_2.jpg"):
        (photos / "obama" / name).symlink_to(testdata / "people/obama" / name)
    (photos / "biden" / "biden_1.jpg").symlink_to(testdata / "people/biden/biden_1.jpg")
    (photos / "group photo.jpg").symlink_to(testdata / "groups/obama_biden_1.jpg")
    (photos / "notes.txt").write_text("not an image, and not picked up")
    facelens("collections", "create", "--collection-id", "c", env=cli_env)

    enrolled = out(facelens("faces", "index", str(photos), "--collection-id", "c", env=cli_env))
    assert enrolled["FailedImages"] == 0
    assert enrolled["IndexedFaces"] == 5
    by_path = {Path(i["Path"]).name: i for i in enrolled["Images"]}
    assert by_path["group photo.jpg"]["ExternalImageId"] == "group_photo.jpg"
    assert by_path["obama_2.jpg"]["UserId"] == "obama"
    assert len(by_path["obama_2.jpg"]["AssociatedFaces"]) == 1

    users = out(facelens("users", "list", "--collection-id", "c", env=cli_env))["Users"]
    assert users == [
        {"UserId": "biden", "UserStatus": "ACTIVE"},
        {"UserId": "obama", "UserStatus": "ACTIVE"},
    ]
    match = out(
        facelens(
            "users",
            "search",
            str(testdata / "people/obama/obama_3.jpg"),
            "--collection-id",
            "c",
            env=cli_env,
        )
    )
    assert match["UserMatches"][0]["User"]["UserId"] == "obama"

    forgotten = out(
        facelens(
            "users",
            "delete",
            "--collection-id",
            "c",
            "--user-id",
            "obama",
            "--delete-faces",
            env=cli_env,
        )
    )
    assert len(forgotten["DeletedFaces"]) == 2
    assert (
        out(facelens("collections", "describe", "--collection-id", "c", env=cli_env))["FaceCount"]
        == 3
    )


def test_users_commands(cli_env: dict[str, str], testdata: Path) -> None:
    facelens("collections", "create", "--collection-id", "c", env=cli_env)
    face_id = out(
        facelens(
            "faces",
            "index",
            str(testdata / "people/biden/biden_1.jpg"),
            "--collection-id",
            "c",
            env=cli_env,
        )
    )["FaceRecords"][0]["Face"]["FaceId"]
    assert (
        out(facelens("users", "create", "--collection-id", "c", "--user-id", "joe", env=cli_env))
        == {}
    )
    associated = out(
        facelens(
            "users",
            "associate",
            "--collection-id",
            "c",
            "--user-id",
            "joe",
            "--face-ids",
            face_id,
            env=cli_env,
        )
    )
    assert associated == {
        "AssociatedFaces": [{"FaceId": face_id}],
        "UnsuccessfulFaceAssociations": [],
        "UserStatus": "ACTIVE",
    }
    again = facelens(
        "users", "create", "--collection-id", "c", "--user-id", "joe", env=cli_env, check=False
    )
    assert error(again)["Code"] == "ConflictException"
    disassociated = out(
        facelens(
            "users",
            "disassociate",
            "--collection-id",
            "c",
            "--user-id",
            "joe",
            "--face-ids",
            face_id,
            env=cli_env,
        )
    )
    assert disassociated["UserStatus"] == "CREATED"
    assert (
        out(facelens("users", "delete", "--collection-id", "c", "--user-id", "joe", env=cli_env))
        == {}
    )


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda d: d.write_bytes(b""), "InvalidImageFormatException"),
        (lambda d: d.write_bytes(os.urandom(4096)), "InvalidImageFormatException"),
        (lambda d: d.write_text("hello, I am not a photo\n"), "InvalidImageFormatException"),
        (
            lambda d: d.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64),
            "InvalidImageFormatException",
        ),
        (lambda d: d.write_bytes(b"\0" * (16 * 1024 * 1024)), "ImageTooLargeException"),
    ],
    ids=["zero-byte", "random-bytes", "text", "truncated-jpeg", "huge"],
)
def test_bad_input_gets_its_code(
    cli_env: dict[str, str], tmp_path: Path, make: Any, code: str
) -> None:
    facelens("collections", "create", "--collection-id", "c", env=cli_env)
    bad = tmp_path / "bad.jpg"
    make(bad)
    for command in (["faces", "index"], ["faces", "search"], ["users", "search"]):
        done = facelens(*command, str(bad), "--collection-id", "c", env=cli_env, check=False)
        assert error(done)["Code"] == code, (command, done.stderr)


def test_truncated_real_photo_and_missing_things(
    cli_env: dict[str, str], testdata: Path, tmp_path: Path
) -> None:
    facelens("collections", "create", "--collection-id", "c", env=cli_env)
    whole = (testdata / "people/obama/obama_1.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    noface = str(testdata / "noface/compreface_no-faces.jpg")
    c = ("--collection-id", "c")
    cases: list[tuple[tuple[str, ...], str]] = [
        (("faces", "index", str(truncated), *c), "InvalidImageFormatException"),
        (("faces", "search", noface, *c), "InvalidParameterException"),
        (("faces", "search", str(tmp_path / "nope.jpg"), *c), "InvalidParameterException"),
        (("collections", "describe", "--collection-id", "nope"), "ResourceNotFoundException"),
        (("collections", "create", *c), "ResourceAlreadyExistsException"),
        (("collections", "create", "--collection-id", "bad id!"), "InvalidParameterException"),
        (
            ("faces", "index", noface, *c, "--external-image-id", "no spaces"),
            "InvalidParameterException",
        ),
        (("faces", "list", *c, "--next-token", "garbage"), "InvalidParameterException"),
        (("faces", "search-by-id", *c, "--face-id", "not-a-uuid"), "InvalidParameterException"),
    ]
    for args, code in cases:
        assert error(facelens(*args, env=cli_env, check=False))["Code"] == code, args
    unknown_engine = facelens(
        "faces", "search", noface, *c, env={**cli_env, "FACELENS_DETECTOR": "nope"}, check=False
    )
    assert error(unknown_engine)["Code"] == "InvalidParameterException"
    assert "unknown detector 'nope'" in error(unknown_engine)["Message"]


def test_bench_lfw_on_a_few_pairs(cli_env: dict[str, str], testdata: Path, tmp_path: Path) -> None:
    lines = (testdata / "lfw/pairs_dev.txt").read_text().splitlines()
    per_fold = int(lines[0].split()[1])
    few = ["2 3"]
    for fold in range(2):
        start = 1 + fold * 2 * per_fold
        few += lines[start : start + 3] + lines[start + per_fold : start + per_fold + 3]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(few) + "\n")
    report = out(
        facelens(
            "bench",
            "lfw",
            "--pairs",
            str(pairs),
            "--images",
            str(testdata / "lfw/images"),
            "--workers",
            "1",
            "--output",
            str(tmp_path / "lfw.json"),
            env=cli_env,
        )
    )
    assert report["pairs"] == 12
    assert report["folds"] == 2
    assert {
        "accuracy",
        "tar_at_far_1e3",
        "far_at_default",
        "tar_at_default",
        "images_per_second",
    } <= set(report)
    assert report["accuracy"] >= 0.8
    assert json.loads((tmp_path / "lfw.json").read_text()) == report
