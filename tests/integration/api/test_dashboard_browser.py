"""The dashboard in a real browser: log in, enrol, edit a profile, watch the live feed,
name a stranger, reject an identification and undo that.

Debian's chromium driven by Playwright (no browser download). The person is
enrolled from one photo through the People page's upload form; a different
photo of them is then put into the object store as a camera would upload a
crop, a recognizer worker (as ``facelens recognize`` runs it) identifies it,
and the identification must appear in the open live feed without a reload.
Every page is then checked at phone and desktop widths for horizontal
overflow, with screenshots left in the test's tmp_path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from facelens.config import Camera
from facelens.engine.protocol import FaceEngine
from facelens.recognizer.worker import RecognizerWorker
from facelens.storage.crops import CropMetadata
from facelens.wiring.bus import open_event_sink
from facelens.wiring.stores import notifying_objects
from tests.integration.people.corrections_helpers import enrol_nicole
from tests.integration.recognizer.conftest import make_crop
from tests.servers._common import missing
from tests.servers.facelens_api import ApiServer, start_api_server
from tests.servers.mjpeg import MjpegCamera
from tests.wired import start_worker, wired_server

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
SLOW_MS = 60_000
"""Enrolment loads the face engine on first use (seconds on a small machine)."""


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    if not CHROMIUM.is_file():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport=DESKTOP)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "console",
                lambda msg: errors.append(msg.text) if msg.type == "error" else None,
            )
            yield page
            assert errors == [], errors  # no script errors, no CSP violations
        finally:
            browser.close()


@pytest.fixture
def worker(api_server: ApiServer) -> Iterator[RecognizerWorker]:
    running, thread, stop = start_worker(wired_server(api_server), api_server.stack)
    yield running
    stop.set()
    thread.join(10)


def put_crop(api_server: ApiServer, body: bytes, *, camera: str) -> str:
    """As ``facelens objects put`` does: through the store that sends the recognizer its event."""
    b = api_server.bundles
    sink = open_event_sink(b.settings, api_server.stack, b.publication())
    objects = notifying_objects(b.settings, b.objects(), sink)
    key = f"faces/1_1/0_0/{int(time.time() * 1000)}_0.jpg"
    meta = CropMetadata(camera=camera, captured_at=datetime.now(UTC), track_id="1")
    objects.put_object(
        b.settings.bucket, key, body, content_type="image/jpeg", metadata=meta.to_metadata()
    )
    return key


def log_in(page: Any, api_server: ApiServer, path: str) -> None:
    """As a visitor would: the page sends them to the login form, which sends them back."""
    from playwright.sync_api import expect

    page.goto(api_server.url + path)
    expect(page).to_have_url(re.compile(r".*/ui/login\?next=.*"))
    page.get_by_label("API key").fill(api_server.admin_token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(api_server.url + path)


def no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    assert width <= inner, f"{page.url} is {width} px wide in a {inner} px window"


def screenshots(page: Any, folder: Path, name: str) -> None:
    """The page at phone and desktop widths (``NAME-phone.png``, ``NAME-desktop.png``),
    each checked for horizontal overflow; the desktop size is left set."""
    for size_name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        no_horizontal_overflow(page)
        page.screenshot(path=folder / f"{name}-{size_name}.png", full_page=True)


def test_enrol_then_see_the_person_identified_live(
    api_server: ApiServer,
    worker: RecognizerWorker,
    browser_page: Any,
    testdata: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    obama = testdata / "people" / "obama"

    log_in(page, api_server, "/ui/people")

    # Enrol through the upload form.
    page.get_by_label("Name").fill("Barack Obama")
    page.get_by_label("Photos").set_input_files(obama / "obama_1.jpg")
    page.get_by_role("button", name="Enrol").click()
    expect(page).to_have_url(re.compile(r".*/ui/people/barack-obama\?notice=.*"), timeout=SLOW_MS)
    expect(page.get_by_role("status")).to_contain_text("1 face enrolled")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Barack Obama")

    # A profile field, added and saved.
    page.get_by_label("New field").fill("Role")
    page.get_by_label("Value").last.fill("President")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status")).to_contain_text("Profile saved")
    expect(page.locator("input[name=field_value][value=President]")).to_have_count(1)
    profile = api_server.bundles.profiles().get("barack-obama")
    assert profile is not None
    assert profile.attributes == {"Name": "Barack Obama", "Role": "President"}

    # The live feed, open and connected, before the camera sees anyone.
    page.get_by_role("link", name="Live").click()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    page.evaluate("window.__notReloaded = true")
    put_crop(api_server, (obama / "obama_2.jpg").read_bytes(), camera="door")
    entry = page.locator("#feed .sighting", has_text="Barack Obama")
    expect(entry).to_be_visible(timeout=SLOW_MS)
    expect(entry).to_contain_text("door")
    expect(entry).to_contain_text("%")
    expect(entry.locator("img")).to_have_js_property("complete", True)
    assert page.evaluate("window.__notReloaded") is True
    assert (
        page.evaluate("document.querySelector('#feed .sighting img').naturalWidth") > 0
    )  # the crop loaded through the authenticated crop route

    pages = ["/ui/", "/ui/people", "/ui/people/barack-obama", "/ui/unknown", "/ui/search"]
    for path in [*pages, "/ui/cameras"]:
        page.goto(api_server.url + path)
        name = path.removeprefix("/ui/").replace("/", "-") or "live"
        screenshots(page, tmp_path, name)
    assert (tmp_path / "live-phone.png").stat().st_size > 0
    assert (tmp_path / "live-desktop.png").stat().st_size > 0


def test_name_an_unknown_face_then_search_and_forget(
    api_server: ApiServer,
    worker: RecognizerWorker,
    browser_page: Any,
    testdata: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    biden = testdata / "people" / "biden"
    log_in(page, api_server, "/ui/")
    expect(page.get_by_text("Nobody is enrolled yet")).to_be_visible()
    api_server.bundles.collections().collections.create_collection(
        "faces"
    )  # as `facelens collections`
    page.reload()
    expect(page.get_by_text("Nobody is enrolled yet")).to_have_count(0)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")

    # Nobody enrolled: the camera's face arrives as unknown.
    put_crop(api_server, (biden / "biden_1.jpg").read_bytes(), camera="garage")
    stranger = page.locator("#feed .sighting--unknown", has_text="garage")
    expect(stranger).to_be_visible(timeout=SLOW_MS)
    expect(stranger).to_contain_text("Unknown")

    # Name it on the Unknown page: that crop is enrolled as a new person.
    stranger.get_by_role("link", name="Unknown").click()
    expect(page.get_by_role("img", name="Unknown face at garage")).to_be_visible()
    screenshots(page, tmp_path, "unknown-face")
    page.get_by_label("Who is this?").fill("Joe Biden")
    page.get_by_role("button", name="Name").click()
    expect(page).to_have_url(re.compile(r".*/ui/people/joe-biden\?notice=.*"), timeout=SLOW_MS)
    expect(page.get_by_role("status")).to_contain_text("next sightings will be identified")

    # The next sighting is identified, live.
    page.get_by_role("link", name="Live").click()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    put_crop(api_server, (biden / "biden_2.jpg").read_bytes(), camera="garage")
    expect(page.locator("#feed .sighting--identified", has_text="Joe Biden")).to_be_visible(
        timeout=SLOW_MS
    )

    # Search by photo finds him.
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Photo", exact=True).set_input_files(biden / "biden_2.jpg")
    page.get_by_role("button", name="Search").click()
    people = page.get_by_role("region", name="People")
    expect(people.get_by_role("link", name="Joe Biden")).to_be_visible(timeout=SLOW_MS)
    expect(people).to_contain_text("%")
    screenshots(page, tmp_path, "search-results")

    # Forgetting him deletes his faces, crops and sightings.
    people.get_by_role("link", name="Joe Biden").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete person").click()
    expect(page.get_by_role("status")).to_contain_text("Joe Biden was deleted")
    expect(page.get_by_text("Nobody is enrolled yet.")).to_be_visible()
    assert api_server.bundles.history().ledger.history(user_id="joe-biden") == []
    assert api_server.bundles.profiles().get("joe-biden") is None


def wait_for_records(api_server: ApiServer, count: int) -> None:
    deadline = time.monotonic() + SLOW_MS / 1000
    while api_server.bundles.history().ledger.count() < count:
        assert time.monotonic() < deadline, "the recognizer did not record the crop"
        time.sleep(0.1)


def test_name_a_stranger_with_one_click(
    api_server: ApiServer,
    worker: RecognizerWorker,
    browser_page: Any,
    testdata: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    biden = testdata / "people" / "biden"
    api_server.bundles.collections().collections.create_collection("faces")
    log_in(page, api_server, "/ui/strangers")
    expect(page.get_by_text("No strangers")).to_be_visible()

    # Twice at the garage (the same photo), nobody enrolled: one stranger, seen twice.
    put_crop(api_server, (biden / "biden_1.jpg").read_bytes(), camera="garage")
    wait_for_records(api_server, 1)
    put_crop(api_server, (biden / "biden_1.jpg").read_bytes(), camera="garage")
    wait_for_records(api_server, 2)
    page.reload()
    card = page.locator(".stranger", has_text="stranger-1")
    expect(card).to_contain_text("Seen 2 times")
    expect(card.get_by_role("img")).to_have_count(2)
    page.wait_for_function(
        "[...document.querySelectorAll('.crops__crop')].every(i => i.naturalWidth > 0)"
    )
    screenshots(page, tmp_path, "strangers")
    page.get_by_role("link", name="stranger-1").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("stranger-1")
    expect(page.locator(".face-pick")).to_have_count(2)
    screenshots(page, tmp_path, "stranger")

    # One name, one click: a person with both faces.
    page.get_by_role("navigation").get_by_role("link", name="Strangers").click()
    card.get_by_label("Who is stranger-1?").fill("Joe Biden")
    card.get_by_role("button", name="Name").click()
    expect(page).to_have_url(re.compile(r".*/ui/people/joe-biden\?notice=.*"), timeout=SLOW_MS)
    expect(page.locator(".flash--ok")).to_contain_text("stranger-1 is now Joe Biden (2 faces")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Joe Biden")
    users = api_server.bundles.collections().users.list_users("faces").users
    assert [(u.user_id, u.face_count) for u in users] == [("joe-biden", 2)]

    # His next sighting is identified, live; the stranger is gone.
    page.get_by_role("link", name="Live").click()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    put_crop(api_server, (biden / "biden_2.jpg").read_bytes(), camera="garage")
    expect(page.locator("#feed .sighting--identified", has_text="Joe Biden")).to_be_visible(
        timeout=SLOW_MS
    )
    page.get_by_role("navigation").get_by_role("link", name="Strangers").click()
    expect(page.get_by_text("No strangers")).to_be_visible()


def test_reject_an_identification_then_undo(
    api_server: ApiServer,
    worker: RecognizerWorker,
    browser_page: Any,
    engine: FaceEngine,
    testdata: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    c = wired_server(api_server)
    enrol_nicole(c, testdata)
    look_alike = make_crop(engine, testdata / "people" / "sarah_paulson" / "sarah_paulson_3.jpg")
    log_in(page, api_server, "/ui/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")

    # Sarah Paulson's look-alike crop is taken for Nicole Kidman.
    put_crop(api_server, look_alike, camera="door")
    entry = page.locator("#feed .sighting", has_text="Nicole Kidman")
    expect(entry).to_be_visible(timeout=SLOW_MS)
    entry.get_by_role("button", name="Not this person").click()
    notice = page.locator(".flash--ok")
    expect(notice).to_contain_text("that face is not Nicole Kidman", timeout=SLOW_MS)
    expect(page.locator("#feed .sighting--rejected")).to_contain_text("Not Nicole Kidman")
    [correction] = c.people.corrections.list()
    assert correction.actor == "dashboard:test-admin"
    screenshots(page, tmp_path, "rejected")

    # The same face again: unknown now.
    put_crop(api_server, look_alike, camera="door")
    expect(page.locator("#feed .sighting--unknown", has_text="door")).to_be_visible(timeout=SLOW_MS)

    # Undo from the notice: the identification stands again.
    notice.get_by_role("button", name="Undo").click()
    expect(notice).to_contain_text("Correction undone")
    expect(page.locator("#feed .sighting--rejected")).to_have_count(0)
    expect(entry.get_by_role("button", name="Not this person")).to_be_visible()
    assert c.people.corrections.list() == []
    page.get_by_role("link", name="Nicole Kidman").first.click()
    expect(page.get_by_role("region", name="Corrections")).to_contain_text("No corrections")
    screenshots(page, tmp_path, "person-thresholds")


@pytest.fixture
def server_with_a_camera(tmp_path: Path, mjpeg_camera: MjpegCamera) -> Iterator[ApiServer]:
    camera = Camera(name="door", url=mjpeg_camera.url)
    started = start_api_server(tmp_path / "home", cameras=[camera])
    try:
        yield started
    finally:
        started.server.stop()
        started.stack.close()


def test_the_cameras_page_shows_each_live_view(
    server_with_a_camera: ApiServer, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, server_with_a_camera, "/ui/cameras")
    view = page.get_by_role("img", name="Live view of door")
    expect(view).to_be_visible()
    # Another origin than the dashboard's: the page's CSP must allow it, and frames arrive.
    page.wait_for_function(
        "document.querySelector('.camera__view').naturalWidth > 0", timeout=10_000
    )
    screenshots(page, tmp_path, "cameras-live")
