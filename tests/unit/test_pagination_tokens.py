"""Page tokens of deep JSON are refused as invalid, not parsed into a RecursionError."""

from __future__ import annotations

import base64

import pytest

from facelens import pagination
from facelens.errors import InvalidParameterException
from facelens.storage import paging

DEEP = base64.urlsafe_b64encode(b"[" * 100_000).decode()
NESTED = base64.urlsafe_b64encode(b'{"c": "", "k": "id", "after": ["x"]}').decode()


@pytest.mark.parametrize("token", [DEEP, NESTED])
def test_collection_tokens_of_nested_json_are_invalid(token: str) -> None:
    with pytest.raises(InvalidParameterException):
        pagination.decode_token(token, scope="", key="id")
    good = pagination.encode_token("", "id", "x")
    assert pagination.decode_token(good, scope="", key="id") == "x"


def test_object_listing_tokens_of_deep_json_are_invalid() -> None:
    with pytest.raises(InvalidParameterException):
        paging.decode_token(DEEP, bucket="b", prefix="")
    good = paging.encode_token("b", "", "k")
    assert paging.decode_token(good, bucket="b", prefix="") == "k"
