"""The live feed in a real browser shows one row per visit: a revision of a visit changes
its row in place and adds none; a look that changed nothing changes nothing.

The ledger is written as the recognizer writes it (answers with VisitId and Revision, a
look's record with ``"Published": false``); the open page must follow without a reload.
Browser fixtures as tests/integration/api/test_dashboard_browser.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from facelens.history.ledger import Recognition, Status
from tests.integration.api.test_dashboard_browser import browser_page, log_in
from tests.servers.facelens_api import ApiServer

__all__ = ["browser_page"]  # the fixture, used by name


def answer(rid: str, at: datetime, *, revision: int, **fields: Any) -> Recognition:
    status = Status.IDENTIFIED if "UserId" in fields else Status.UNKNOWN
    message = {
        "RecognitionId": rid,
        "Status": status.value,
        "Camera": "door",
        "VisitId": "door-7",
        "Revision": revision,
        "Looks": revision + 1,
        **fields,
    }
    topic = "rekognition" if status is Status.IDENTIFIED else "rekognition/unknown"
    return Recognition(rid, status, topic, message, at)


def test_a_revision_updates_its_visit_s_row_in_place(
    api_server: ApiServer, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    ledger = api_server.bundles.history().ledger
    now = datetime.now(UTC)
    ledger.record(Recognition("other", Status.UNKNOWN, "rekognition/unknown",
                              {"RecognitionId": "other", "Camera": "yard"},
                              now - timedelta(seconds=5)))  # fmt: skip
    ledger.record(answer("first", now - timedelta(seconds=3), revision=0, StrangerId="stranger-4"))
    ledger.record(answer("first-b", now - timedelta(seconds=2), revision=0, Published=False))

    log_in(page, api_server, "/ui/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    rows = page.locator("#feed .sighting")
    expect(rows).to_have_count(2)  # the visit once (its unpublished look is no row), and yard
    visit = page.locator("#v-door-7")
    expect(visit).to_contain_text("stranger-4")
    page.evaluate("window.__notReloaded = true")

    # A look that changed nothing: recorded, not published; the row stays as it is.
    ledger.record(answer("look-2", datetime.now(UTC), revision=0, Published=False))
    # The visit's answer changes: the stranger is Ada. Its row changes; no row is added.
    revises = {"RecognitionId": "first", "Status": "unknown", "UserId": None}
    revised = answer(
        "third", datetime.now(UTC), revision=1, UserId="ada", Name="Ada Lovelace", Revises=revises
    )
    ledger.record(revised)
    expect(visit).to_contain_text("Ada Lovelace", timeout=20_000)
    expect(visit).to_contain_text("revised")
    expect(visit).to_have_attribute("data-id", "third")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_id("v-door-7")  # moved to the top
    assert page.evaluate("window.__notReloaded") is True
    # A reload shows the same: one row for the visit, its current answer.
    page.reload()
    expect(rows).to_have_count(2)
    expect(page.locator("#v-door-7")).to_contain_text("Ada Lovelace")
