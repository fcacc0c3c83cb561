"""`facelens bench identify` as a user runs it: a real process on real photos in LFW layout,
JSON out, embeddings cached between runs, the recognizer's own settings deciding."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import error, facelens, out

SIZES = "5,all"


@pytest.fixture
def lfw_folder(tmp_path: Path, testdata: Path) -> Path:
    """The shared people photos in LFW layout: one folder per identity, linked, not copied
    (one identity copied, so the test can touch a photo without touching the shared data)."""
    root = tmp_path / "lfw"
    root.mkdir()
    for person in sorted((testdata / "people").iterdir()):
        if not person.is_dir():
            continue
        if person.name == "kit_harington":
            shutil.copytree(person, root / person.name)
        else:
            (root / person.name).symlink_to(person, target_is_directory=True)
    return root


def identify(folder: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    done = facelens(
        "bench",
        "identify",
        "--images",
        str(folder),
        "--gallery-sizes",
        SIZES,
        "--enrol-photos",
        "1,3",
        *extra,
        env=env,
    )
    document: dict[str, Any] = out(done)
    return document


def test_identify_reports_every_gallery_and_reuses_its_cache(
    lfw_folder: Path, cli_env: dict[str, str], home: Path, tmp_path: Path, testdata: Path
) -> None:
    written = tmp_path / "report" / "identify.json"
    first = identify(lfw_folder, cli_env, "--output", str(written))
    assert json.loads(written.read_text()) == first

    photos = [p for d in lfw_folder.iterdir() for p in d.iterdir()]
    counts = first["counts"]
    assert counts["identities"] == len(list(lfw_folder.iterdir()))
    assert counts["images"] == len(photos)
    assert counts["enrolable_identities"] >= 10
    assert first["embedded"] == len(photos)
    assert first["cache_hits"] == 0
    cache = Path(first["cache_file"])
    assert cache.parent == home / "cache"
    assert cache.is_file()
    assert not any(p.name.startswith("identify-") for p in testdata.rglob("*.npz"))
    assert first["rule"]["face_match_threshold"] == 80.0
    assert first["rule"]["rule"] == "open-set"
    assert first["rule"]["calibrated"] is True

    results = first["results"]
    assert [(r["gallery_size_requested"], r["enrol_photos"]) for r in results] == [
        ("5", 1),
        ("all", 1),
        ("5", 3),
        ("all", 3),
    ]
    for r in results:
        f = r["figures"]
        assert f["mated_probes"] + f["non_mated_probes"] > 0
        assert 0.0 <= f["rank1"] <= 1.0
        assert [a["fpir_target"] for a in f["threshold_free"]] == [0.01, 0.001]
        for key in ("fnir", "fpir", "mated_wrong_name", "mated_unknown"):
            assert 0.0 <= f["at_rule"][key] <= 1.0
        assert f["at_rule"]["fnir"] == pytest.approx(
            f["at_rule"]["mated_wrong_name"] + f["at_rule"]["mated_unknown"]
        )
    small, full = results[0], results[1]
    assert small["gallery_size"] == 5
    assert full["gallery_size"] == counts["enrolable_identities"]
    # the same probe photos, only more of them strangers to the small gallery
    total = full["figures"]["mated_probes"] + full["figures"]["non_mated_probes"]
    assert small["figures"]["mated_probes"] + small["figures"]["non_mated_probes"] == total
    assert small["figures"]["non_mated_probes"] > full["figures"]["non_mated_probes"]
    assert results[3]["identities_enrolling_several"] > 0  # obama & co. enrol three
    assert full["figures"]["rank1"] >= 0.9  # these are clear photos of distinct people

    # Second run: every vector read back, nothing embedded; the figures are the same.
    second = identify(lfw_folder, cli_env)
    assert second["cache_hits"] == len(photos)
    assert second["embedded"] == 0
    assert [r["figures"] for r in second["results"]] == [r["figures"] for r in results]

    # A photo that changed is embedded again, alone; and the recognizer's own setting
    # decides "at the rule" (the similarity rule at 100: nobody is ever named) but not the
    # vectors' cache key.
    touched = next((lfw_folder / "kit_harington").iterdir())
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    strict = identify(
        lfw_folder,
        {
            **cli_env,
            "FACELENS_RECOGNIZER__RULE": "similarity",
            "FACELENS_RECOGNIZER__FACE_MATCH_THRESHOLD": "100",
        },
    )
    assert strict["embedded"] == 1
    assert strict["cache_hits"] == len(photos) - 1
    assert strict["rule"]["face_match_threshold"] == 100.0
    assert strict["rule"]["rule"] == "similarity"
    for r in strict["results"]:
        assert r["figures"]["at_rule"]["fpir"] == 0.0
        assert r["figures"]["at_rule"]["fnir"] == 1.0
    for before, after in zip(results, strict["results"], strict=True):  # threshold-free: same
        assert after["figures"]["rank1"] == before["figures"]["rank1"]
        assert after["figures"]["threshold_free"] == before["figures"]["threshold_free"]


def test_identify_refuses_a_folder_that_is_not_lfw_layout(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    missing = error(
        facelens("bench", "identify", "--images", str(tmp_path / "nope"), env=cli_env, check=False)
    )
    assert missing["Code"] == "InvalidParameterException"
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"")
    flat = error(
        facelens("bench", "identify", "--images", str(tmp_path / "flat"), env=cli_env, check=False)
    )
    assert flat["Code"] == "InvalidParameterException"
    assert "LFW layout" in flat["Message"]
    sizes = error(
        facelens(
            "bench",
            "identify",
            "--images",
            str(tmp_path / "flat"),
            "--gallery-sizes",
            "ten",
            env=cli_env,
            check=False,
        )
    )
    assert sizes["Code"] == "InvalidParameterException"
