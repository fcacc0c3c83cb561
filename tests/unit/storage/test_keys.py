"""Bucket, key, metadata and paging checks: one set of rules for every back end."""

from __future__ import annotations

import pytest

from facelens.errors import InvalidParameterException
from facelens.storage import keys
from facelens.storage.paging import decode_token, encode_token


@pytest.mark.parametrize(
    "name",
    ["abc", "facelens", "my-bucket.v2", "0bucket9", "a" * 63, "a.b-c.d", "192.168.1.1x"],
)
def test_valid_bucket_names_pass(name: str) -> None:
    assert keys.check_bucket(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("My-Bucket", "lowercase"),
        ("under_score", "lowercase"),
        ("-start", "begin and end"),
        ("end-", "begin and end"),
        (".start", "begin and end"),
        ("two..dots", "adjacent dots"),
        ("192.168.1.1", "IP address"),
        ("xn--bucket", "xn--"),
        ("sthree-bucket", "sthree-"),
        ("bucket-s3alias", "-s3alias"),
        ("bucket--ol-s3", "--ol-s3"),
        ("sp ace", "lowercase"),
        ("bücket", "lowercase"),
    ],
)
def test_invalid_bucket_names_are_refused_with_the_rule(name: str, reason: str) -> None:
    with pytest.raises(InvalidParameterException, match=reason):
        keys.check_bucket(name)


def test_bucket_name_must_be_a_string() -> None:
    with pytest.raises(InvalidParameterException, match="string"):
        keys.check_bucket(123)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "faces/2024/05/06/cam1-0001.jpg",
        "red flower.jpg",
        "c++/a+b=c;d,e@f$g&h.jpg",
        "ünïcödé/日本語/😀.png",
        "..hidden/...",
        ".dotfile",
        "a." * 127 + "b",
        "é" * 127,
        "/".join(["x" * 200] * 5),
    ],
)
def test_valid_keys_pass(key: str) -> None:
    assert keys.check_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/abs/path.jpg", "start with '/'"),
        ("a/../b", "'..'"),
        ("..", "'..'"),
        ("../escape", "'..'"),
        ("a/./b", "'.'"),
        (".", "'.'"),
        ("a//b", "empty path segment"),
        ("trailing/", "empty path segment"),
        ("nul\x00byte", "NUL"),
        ("back\\slash", "backslash"),
        ("x" * 1025, "1024"),
        ("é" * 513, "1024"),
        ("x" * 256, "255"),
        ("lone\ud800surrogate", "surrogate"),
    ],
)
def test_invalid_keys_are_refused_with_the_rule(key: str, reason: str) -> None:
    with pytest.raises(InvalidParameterException, match=reason):
        keys.check_key(key)


def test_key_limit_counts_utf8_bytes_not_characters() -> None:
    keys.check_key("/".join(["é" * 127] * 4))  # 1019 bytes in 511 characters
    keys.check_key("/".join(["é" * 127] * 4) + "/éé")  # 1024 bytes: the limit
    with pytest.raises(InvalidParameterException, match="1026"):
        keys.check_key("/".join(["é" * 127] * 4) + "/ééé")


def test_metadata_names_are_lowercased_and_checked() -> None:
    assert keys.check_metadata({"Thing": "cam1", "Track-ID": "7"}) == {
        "thing": "cam1",
        "track-id": "7",
    }
    assert keys.check_metadata(None) == {}


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"": "x"}, "HTTP token"),
        ({"with space": "x"}, "HTTP token"),
        ({"ümlaut": "x"}, "HTTP token"),
        ({"a": "ünicode"}, "US-ASCII"),
        ({"a": "line\nbreak"}, "US-ASCII"),
        ({"a": " padded"}, "leading or trailing"),
        ({"Name": "1", "name": "2"}, "twice"),
        ({"a": "x" * 2048}, "2048"),
        ({"a": 1}, "strings"),
    ],
)
def test_bad_metadata_is_refused(metadata: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidParameterException, match=reason):
        keys.check_metadata(metadata)  # type: ignore[arg-type]


@pytest.mark.parametrize("content_type", ["", " leading", "ünicode/x", "a\nb", "x" * 256])
def test_bad_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(InvalidParameterException, match="Content type"):
        keys.check_content_type(content_type)


@pytest.mark.parametrize("max_keys", [0, 1001, -1, True, 2.5])
def test_max_keys_outside_1_to_1000_is_refused(max_keys: int) -> None:
    with pytest.raises(InvalidParameterException, match="MaxKeys"):
        keys.check_max_keys(max_keys)


def test_page_tokens_round_trip_and_refuse_other_listings() -> None:
    token = encode_token("bucket", "faces/", "faces/é 1.jpg")
    assert decode_token(token, bucket="bucket", prefix="faces/") == "faces/é 1.jpg"
    assert decode_token(None, bucket="bucket", prefix="") == ""
    for bucket, prefix in [("other", "faces/"), ("bucket", "")]:
        with pytest.raises(InvalidParameterException, match="token"):
            decode_token(token, bucket=bucket, prefix=prefix)
    for garbage in ["", "!!!", "bm90IGpzb24=", "WzFd", "é"]:
        with pytest.raises(InvalidParameterException, match="token"):
            decode_token(garbage, bucket="bucket", prefix="faces/")
