"""The dashboard's live feed under ``/ui/``: sightings as they happen, their crops, the cameras.

The dashboard is server-rendered pages: login in :mod:`facelens.api.dashboard.login`,
people and unknown faces in :mod:`facelens.api.dashboard.people`, search in
:mod:`facelens.api.dashboard.search`, strangers in :mod:`facelens.api.dashboard.strangers`,
"not this person" and thresholds in :mod:`facelens.api.dashboard.corrections`;
what the pages share (templates, login redirects, same-origin checks) in
:mod:`facelens.api.dashboard.web`. No framework and nothing from a CDN: one
stylesheet and one small script, served from the package, so a
dashboard on a LAN without internet works, and the CSP allows only 'self'.

The live feed is Server-Sent Events: ``/ui/feed`` polls the recognizer's
ledger every ``FEED_POLL_SECONDS`` (in the thread pool: SQLite blocks) and
sends each new sighting as a rendered HTML fragment; the page's script puts
it at the top of the list. A visit (:mod:`facelens.history.visits`) is one
row, keyed by its VisitId: each answer published for it (its first, then each
revision) replaces that row and moves it to the top; a look that changed
nothing (``"Published": false``) is not sent. Polling the ledger rather than subscribing to
MQTT works with every deployment (no broker needed) and sees exactly what
the ledger's history API pages through.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from facelens.access.keys import Principal, Role
from facelens.api.context import (
    Collections,
    Context,
    Corrections,
    Ledger,
    Objects,
    ServerContext,
)
from facelens.api.dashboard.sightings import one_per_visit, published, sightings, with_corrections
from facelens.api.dashboard.web import STATIC, Viewer, origin_of, page, public_url, templates
from facelens.api.security import require
from facelens.errors import (
    InvalidParameterException,
    ResourceNotFoundException,
    ValidationException,
)
from facelens.history.ledger import RecognitionLedger, Status

router = APIRouter(include_in_schema=False)

FEED_SIZE = 40
"""Rows the feed page starts with: one per visit (its current answer), one per crop of no
visit."""
FEED_ROWS_READ = 4 * FEED_SIZE
"""Records read to fill them: a visit may have several (its revisions, its looks)."""
FEED_POLL_SECONDS = 0.5
FEED_LOOKBACK_SECONDS = 10.0
"""Each poll re-reads this far behind the newest sighting sent, so a record written late
(a worker that recognized first but recorded second) is still sent; ids already sent
are skipped."""
_EARLIEST_START = datetime(1, 1, 2, tzinfo=UTC)
"""The earliest ``after`` the feed takes: a day past year 1's start, so the look-back
(seconds) can always be subtracted. No sighting is that old; "everything" is this."""
FEED_BATCH = 50
KEEPALIVE_SECONDS = 15.0
"""A comment line after this much silence, so proxies keep the stream and a gone client
is noticed."""
_STATIC_TYPES = {"style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
_CROP_TYPES = {"image/jpeg", "image/png", "image/webp"}


# -- the live feed --


@router.get("/ui/")
def live(
    request: Request,
    _who: Viewer,
    ctx: Context,
    ledger: Ledger,
    corrections: Corrections,
    collections: Collections,
) -> Response:
    records = one_per_visit(ledger.history(limit=FEED_ROWS_READ))
    shown = sightings(ctx.crops, [r for r in records if r.status is not Status.ERROR][:FEED_SIZE])
    shown = with_corrections(corrections, shown)
    newest = shown[0].seen_iso if shown else datetime.now(UTC).isoformat()
    try:
        collections.describe_collection(ctx.collection_id)
        has_collection = True
    except ResourceNotFoundException:
        has_collection = False
    return page(
        request,
        "feed.html",
        sightings=shown,
        after=newest,
        has_collection=has_collection,
        active="live",
    )


@router.get("/ui/feed", dependencies=[Depends(require(Role.READ))])
async def feed(
    request: Request, ctx: Context, ledger: Ledger, after: str | None = None
) -> StreamingResponse:
    """``text/event-stream`` of sightings newer than ``after`` (or the Last-Event-ID)."""
    start = (
        _start(request.headers.get("last-event-id"), "Last-Event-ID")
        or _start(after, "after")
        or datetime.now(UTC)
    )
    return StreamingResponse(
        _events(request, ctx, ledger, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, ctx: ServerContext, ledger: RecognitionLedger, start: datetime
) -> AsyncIterator[str]:
    fragment = templates().get_template("_sighting.html")
    principal: Principal = request.state.principal
    can_edit = principal.role.allows(Role.ADMIN)  # the fragment's "Not this person" button
    stopping: threading.Event = request.app.state.stopping
    newest = start
    sent: OrderedDict[str, None] = OrderedDict()
    quiet = 0.0
    yield "retry: 2000\n\n"
    while not stopping.is_set() and not await request.is_disconnected():
        since = (newest - timedelta(seconds=FEED_LOOKBACK_SECONDS)).astimezone(UTC)
        records = await run_in_threadpool(ledger.history, limit=FEED_BATCH, after=since.isoformat())
        fresh = [
            r
            for r in reversed(records)
            if r.recognition_id not in sent and r.status is not Status.ERROR and published(r)
        ]
        for s in sightings(ctx.crops, fresh):
            sent[s.recognition_id] = None
            if len(sent) > 4 * FEED_BATCH:
                sent.popitem(last=False)
            newest = max(newest, s.seen_at)
            html = fragment.render(s=s, can_edit=can_edit, here="/ui/")
            # row: the page replaces the row of that id (a visit's), so a revision updates
            # its visit in place; revision: an older answer arriving late replaces nothing.
            data = json.dumps(
                {"id": s.recognition_id, "row": s.row_id, "revision": s.revision, "html": html}
            )
            yield f"id: {s.seen_iso}\nevent: sighting\ndata: {data}\n\n"
        quiet = 0.0 if fresh else quiet + FEED_POLL_SECONDS
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(FEED_POLL_SECONDS)


def _start(text: str | None, name: str) -> datetime | None:
    """Where the feed starts, in UTC (a naive time is UTC); None when not given.

    ValidationException (400) for text that is not ISO 8601, and for a time the stream
    cannot look back from (it polls from the newest time minus the look-back: from year 1
    that ended the stream with OverflowError) or that is past year 9999 in UTC.
    """
    if not text:
        return None
    try:
        value: datetime | None = datetime.fromisoformat(text)
    except ValueError:
        value = None
    try:
        if value is not None:
            value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        value = None
    if value is None or value < _EARLIEST_START:
        raise ValidationException(
            f"{name} must be an ISO 8601 time from {_EARLIEST_START.isoformat()} to year 9999 "
            f"(UTC), got {text[:40]!r}"
        )
    return value


# -- crops, cameras, static files --


@router.get("/ui/crops/{key:path}", dependencies=[Depends(require(Role.READ))])
async def crop(ctx: Context, objects: Objects, key: str) -> Response:
    """A crop from the object store: only under the recognizer's prefix, only as an image."""
    if not key.startswith(ctx.crops.prefix):
        raise InvalidParameterException("Only crops can be shown")
    stored = await run_in_threadpool(objects.get_object, ctx.crops.bucket, key)
    media = stored.info.content_type.split(";")[0].strip().lower()
    return Response(
        stored.body,
        media_type=media if media in _CROP_TYPES else "application/octet-stream",
        headers={
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
        },
    )


@router.get("/ui/cameras")
def cameras(request: Request, _who: Viewer, ctx: Context, ledger: Ledger) -> Response:
    shown = []
    for camera in ctx.settings.cameras:
        last = ledger.history(limit=1, camera=camera.name)
        url = public_url(camera.url)
        shown.append(
            {
                "name": camera.name,
                "url": url,
                "has_credentials": "@" in camera.url.split("//", 1)[-1].split("/", 1)[0],
                "origin": origin_of(camera.url),
                "last": sightings(ctx.crops, last)[0] if last else None,
            }
        )
    return page(request, "cameras.html", cameras=shown, active="cameras")


@router.get("/ui/static/{name}")
def static(name: str) -> Response:
    media = _STATIC_TYPES.get(name)
    if media is None:
        raise ResourceNotFoundException(f"No static file {name!r}")
    return Response(
        (STATIC / name).read_bytes(),
        media_type=media,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
