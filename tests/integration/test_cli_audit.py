"""`facelens audit` and what the CLI records: real processes, one home, the OS user as actor."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from facelens.history.audit import pseudonym
from tests.integration.test_cli import error, facelens, out


def test_profile_commands_are_audited_as_the_os_user(cli_env: dict[str, str]) -> None:
    facelens("profiles", "put", "anna", "--attr", "Name=Anna", env=cli_env)
    facelens("profiles", "get", "anna", env=cli_env)
    facelens("profiles", "delete", "anna", env=cli_env)

    entries = out(facelens("audit", env=cli_env))["Entries"]
    me = f"cli:{getpass.getuser()}"
    assert [(e["Action"], e["Target"], e["Actor"]) for e in entries] == [
        ("profile-delete", "anna", me),
        ("profile-read", "anna", me),
        ("profile-write", "anna", me),
    ]
    reads = out(facelens("audit", "--action", "profile-read", "--actor", me, env=cli_env))
    assert [e["Target"] for e in reads["Entries"]] == ["anna"]
    paged = out(facelens("audit", "--limit", "2", env=cli_env))
    assert len(paged["Entries"]) == 2
    older = out(facelens("audit", "--before", str(paged["NextBefore"]), env=cli_env))
    assert [e["Action"] for e in older["Entries"]] == ["profile-write"]
    assert out(facelens("audit", "--since", "2999-01-01", env=cli_env))["Entries"] == []
    assert (
        error(facelens("audit", "--since", "yesterday", env=cli_env, check=False))["Code"]
        == "InvalidParameterException"
    )


@pytest.mark.slow
def test_enrol_and_forget_from_the_cli(cli_env: dict[str, str], testdata: Path) -> None:
    enrolled = out(
        facelens(
            "enroll",
            str(testdata / "people/obama/obama_1.jpg"),
            "--name",
            "Barack Obama",
            env=cli_env,
        )
    )
    user_id, (face_id,) = enrolled["UserId"], enrolled["FaceIds"]
    (entry,) = out(facelens("audit", "--action", "enrol", env=cli_env))["Entries"]
    assert entry["Target"] == user_id
    assert entry["Details"]["FaceIds"] == [face_id]

    facelens(
        "users",
        "delete",
        "--collection-id",
        "faces",
        "--user-id",
        user_id,
        "--delete-faces",
        env=cli_env,
    )
    entries = out(facelens("audit", env=cli_env))["Entries"]
    assert entries[0]["Action"] == "forget"
    assert entries[0]["Target"] == pseudonym(user_id)
    assert user_id not in str(entries)
    assert face_id not in str(entries)
    assert out(facelens("audit", "--target", user_id, env=cli_env))["Entries"] == []


@pytest.mark.slow
def test_the_profile_enroll_prints_and_user_changes_are_recorded(
    cli_env: dict[str, str], testdata: Path
) -> None:
    enrolled = out(
        facelens(
            "enroll",
            str(testdata / "people/obama/obama_1.jpg"),
            "--name",
            "Barack Obama",
            env=cli_env,
        )
    )
    user_id, (face_id,) = enrolled["UserId"], enrolled["FaceIds"]
    assert enrolled["Profile"]["Name"] == "Barack Obama"
    user = ("--collection-id", "faces", "--user-id", user_id)
    facelens("users", "disassociate", *user, "--face-ids", face_id, env=cli_env)
    facelens("users", "create", "--collection-id", "faces", "--user-id", "joe", env=cli_env)

    entries = out(facelens("audit", env=cli_env))["Entries"]
    me = f"cli:{getpass.getuser()}"
    assert [(e["Action"], e["Target"], e["Actor"]) for e in reversed(entries)] == [
        ("enrol", user_id, me),
        ("profile-read", user_id, me),
        ("disassociate", user_id, me),
        ("create-user", "joe", me),
    ]
    assert entries[2]["Details"] == {"Via": "enroll"}
    assert entries[2]["CollectionId"] == "faces"
    assert entries[1]["Details"] == {"FaceIds": [face_id]}
