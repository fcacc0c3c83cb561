"""What the Rekognition and DynamoDB fuzz tests share: targets, numbers, parameter bodies.

Both are the AWS JSON protocol on ``POST /``: each case is one operation (a
real one most of the time, else a wrong target) with parameters under their
real names holding plausible or hostile values, or a body that is not a JSON
object at all, signed by botocore's own SigV4 signer with a valid admin or
read-only key, or signed wrongly (:data:`tests.fuzz.calls.SIGV4_KINDS`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fuzz.strategies import (
    HUGE_INTS,
    JSON_SCALARS,
    dumps,
    json_values,
    mostly,
    raw_bodies,
    text,
)


def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-2, 5000),
        st.sampled_from([*HUGE_INTS, 0.5, float("nan"), float("inf"), "10", True]),
        JSON_SCALARS,
    )


@st.composite
def params_body(
    draw: st.DrawFn, params: dict[str, st.SearchStrategy[Any]], names: list[str]
) -> bytes:
    """A JSON object naming some of ``names`` (the operation's) and now and then others."""
    if draw(st.integers(0, 8)) == 0:
        return draw(raw_bodies())
    document: dict[str, Any] = {}
    for name in names:
        if draw(st.integers(0, 4)) > 0:
            document[name] = draw(params[name]) if draw(st.integers(0, 4)) else draw(json_values())
    if draw(st.integers(0, 5)) == 0:
        document[draw(st.sampled_from(sorted(params)) | text())] = draw(json_values())
    return dumps(document, ascii_only=draw(st.booleans()))


def targets(prefix: str, operations: list[str]) -> st.SearchStrategy[str]:
    return mostly(
        st.sampled_from([prefix + name for name in operations]),
        st.one_of(
            st.sampled_from(["", prefix, prefix + "DetectLabels", "DynamoDB_20120810.Query"]),
            text(max_size=30).map(lambda t: prefix + t),
        ),
    )
