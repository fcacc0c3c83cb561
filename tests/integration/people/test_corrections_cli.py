"""`facelens corrections` and `facelens thresholds` as a user runs them: a real process.

The recognizer runs in this process on the same home; the correction is made
by the command, another process, and counts from the recognizer's next crop.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from facelens.engine.protocol import FaceEngine
from tests.integration.people.corrections_helpers import (
    NICOLE,
    enrol_nicole,
    make_crops,
    recognize,
    who,
)
from tests.integration.recognizer.conftest import open_recognizer_process
from tests.integration.test_cli import error, facelens, out
from tests.wired import Wired


@pytest.fixture(scope="session")
def crops(engine: FaceEngine, testdata: Path) -> dict[str, bytes]:
    return make_crops(engine, testdata)


@pytest.fixture
def recognizer(
    engine: FaceEngine, testdata: Path, home: Path, cli_env: dict[str, str]
) -> Iterator[Wired]:
    with ExitStack() as stack:
        wired = open_recognizer_process(engine, home, stack, mqtt_url=None)
        enrol_nicole(wired, testdata)
        yield wired


def test_reject_list_undo_from_the_command_line(
    recognizer: Wired, crops: dict[str, bytes], cli_env: dict[str, str]
) -> None:
    wrong = recognize(recognizer, crops["sarah_paulson_3"])
    assert who(wrong) == NICOLE

    rejected = out(facelens("corrections", "reject", wrong.recognition_id, env=cli_env))
    correction = rejected["Correction"]
    assert correction["PersonId"] == NICOLE
    assert correction["RecognitionId"] == wrong.recognition_id
    assert correction["Actor"] == f"cli:{getpass.getuser()}"
    assert who(recognize(recognizer, crops["sarah_paulson_3"])) is None

    listed = out(facelens("corrections", "list", "--person", NICOLE, env=cli_env))
    assert [c["CorrectionId"] for c in listed["Corrections"]] == [correction["CorrectionId"]]
    undone = out(facelens("corrections", "undo", correction["CorrectionId"], env=cli_env))
    assert undone["Correction"]["Undone"] is True
    assert out(facelens("corrections", "list", env=cli_env)) == {"Corrections": []}
    assert who(recognize(recognizer, crops["sarah_paulson_3"])) == NICOLE

    missing = facelens("corrections", "undo", str(uuid.uuid4()), env=cli_env, check=False)
    assert error(missing)["Code"] == "ResourceNotFoundException"
    unknown = facelens("corrections", "reject", str(uuid.uuid4()), env=cli_env, check=False)
    assert error(unknown)["Code"] == "ResourceNotFoundException"


def test_thresholds_set_get_clear(
    recognizer: Wired, crops: dict[str, bytes], cli_env: dict[str, str]
) -> None:
    assert out(facelens("thresholds", "get", NICOLE, env=cli_env)) == {
        "PersonId": NICOLE,
        "FaceMatchThreshold": None,
        "EffectiveThreshold": 80.0,
    }
    assert out(facelens("thresholds", "set", NICOLE, "95", env=cli_env))["EffectiveThreshold"] == 95
    assert who(recognize(recognizer, crops["sarah_paulson_3"])) is None
    assert who(recognize(recognizer, crops["nicole_kidman_2"])) == NICOLE
    cleared = out(facelens("thresholds", "set", NICOLE, "--clear", env=cli_env))
    assert cleared["FaceMatchThreshold"] is None
    assert who(recognize(recognizer, crops["sarah_paulson_3"])) == NICOLE

    neither = facelens("thresholds", "set", NICOLE, env=cli_env, check=False)
    assert error(neither)["Code"] == "InvalidParameterException"
    too_low = facelens("thresholds", "set", NICOLE, "20", env=cli_env, check=False)
    assert error(too_low)["Code"] == "InvalidParameterException"
    nobody = facelens("thresholds", "set", "nobody", "90", env=cli_env, check=False)
    assert error(nobody)["Code"] == "ResourceNotFoundException"
