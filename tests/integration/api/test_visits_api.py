"""``GET /api/v1/visits``: one row per visit, a revision changes its row, keyset pages,
filters, the read role, and bad input as 400s (a real server on a private home)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from facelens.history.ledger import Status
from facelens.history.visits import VisitAnswer, VisitLook
from facelens.pagination import encode_token
from tests.servers.facelens_api import ApiServer

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def call(server: ApiServer, *, token: str | None = None, expect: int = 200, **params: Any) -> Any:
    response = requests.get(
        f"{server.url}/api/v1/visits",
        headers=server.headers(token=token),
        params=params,
        timeout=60,
    )
    assert response.status_code == expect, response.text
    return response.json()


def answer(
    n: int, revision: int = 0, *, status: Status = Status.IDENTIFIED, **m: Any
) -> VisitAnswer:
    at = START + timedelta(seconds=n + revision * 10)
    message = {"RecognitionId": f"r{n}-{revision}", "VisitId": f"v{n}", "Revision": revision, **m}
    return VisitAnswer(f"v{n}", revision, f"r{n}-{revision}", status, message, m.get("Camera"), 1,
                       START + timedelta(seconds=n), at)  # fmt: skip


def test_visits_page_filter_and_a_revision_updates_its_row(api_server: ApiServer) -> None:
    visits = api_server.bundles.history().visits
    for n in range(4):
        camera = "door" if n < 2 else "porch"
        if n % 2:
            first = answer(n, status=Status.UNKNOWN, Camera=camera, StrangerId=f"stranger-{n}")
        else:
            first = answer(n, Camera=camera, UserId="ada", Name="Ada Lovelace")
        assert visits.revise(first, expected=None)
    rows = call(api_server)["Visits"]
    assert [r["VisitId"] for r in rows] == ["v3", "v2", "v1", "v0"]
    assert rows[3]["Who"] == "Ada Lovelace"
    assert rows[2]["Who"] == "stranger-1"
    assert rows[3]["Revision"] == 0
    # v1, a stranger, turns out to be Ada: its row changes and moves up; no row is added.
    revises = {"RecognitionId": "r1-0", "Status": "unknown", "UserId": None}
    later = answer(1, 1, Camera="door", UserId="ada", Revises=revises)
    assert visits.revise(later, expected=0)
    visits.add_look(VisitLook("r1-look", "v1", START + timedelta(seconds=30)), keep=5)
    rows = call(api_server)["Visits"]
    assert [r["VisitId"] for r in rows] == ["v1", "v3", "v2", "v0"]
    assert (rows[0]["Who"], rows[0]["Revision"], rows[0]["Looks"]) == ("ada", 1, 2)
    assert rows[0]["Message"]["Revises"] == revises
    assert rows[0]["UpdatedAt"] == (START + timedelta(seconds=30)).isoformat()
    first_page = call(api_server, max_results=3)
    assert [r["VisitId"] for r in first_page["Visits"]] == ["v1", "v3", "v2"]
    rest = call(api_server, max_results=3, next_token=first_page["NextToken"])
    assert [r["VisitId"] for r in rest["Visits"]] == ["v0"]
    assert "NextToken" not in rest
    assert [r["VisitId"] for r in call(api_server, camera="door")["Visits"]] == ["v1", "v0"]
    assert [r["VisitId"] for r in call(api_server, user_id="ada")["Visits"]] == ["v1", "v2", "v0"]
    assert [r["VisitId"] for r in call(api_server, status="unknown")["Visits"]] == ["v3"]
    assert call(api_server, camera="a\x00b")["Visits"] == []
    # The read role suffices; bad input is a 400 with an AWS-style code, never a 5xx.
    assert call(api_server, token=api_server.reader_token)["Visits"]
    for bad in ({"next_token": "!!"}, {"next_token": "e30="}, {"status": "maybe"}):
        call(api_server, expect=400, **bad)
    response = requests.get(f"{api_server.url}/api/v1/visits", timeout=10)
    assert response.status_code in (401, 403)


def test_bad_tokens_are_invalid_never_a_5xx(api_server: ApiServer) -> None:
    key = "updated_at,visit_id"
    for after in (
        "[" * 5000,
        '["0001-01-01T00:00:00+01:00", "v"]',
        '["9999-12-31T23:59:59-01:00", "v"]',
        '["not a time", "v"]',
        '[1, "v"]',
        '["2026-01-01T00:00:00+00:00"]',
    ):
        bad = call(api_server, expect=400, next_token=encode_token("visits", key, after))
        assert bad["__type"] == "InvalidParameterException"
    other = encode_token("identifications", key, '["2026-01-01T00:00:00+00:00", "v"]')
    assert call(api_server, expect=400, next_token=other)["__type"] == "InvalidParameterException"
