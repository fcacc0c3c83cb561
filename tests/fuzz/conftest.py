"""The fuzz suite's server, its Hypothesis profiles, and the per-surface counts.

One real server for the whole suite (``facelens serve`` as built by
:func:`facelens.api.serve.build_server`, uvicorn on a loopback port), publishing
to a real Mosquitto broker, with admin and read-only API keys, admin and
read-only SigV4 access keys, and dashboard sessions for both. The failed
authentication limit is lifted (``serve.failed_auth_limit``): with the default
10 a minute, the invalid credentials the fuzz sends would throttle every
later request to 429 and the suite would stop reaching anything.

Profiles (``FACELENS_FUZZ_PROFILE``):

* ``ci`` (default): few cases per surface (each test names its own, about a
  minute for the suite), derandomized, so CI runs the same cases every time;
  the first broken rule fails the test, shrunk by Hypothesis.
* ``long``: 2000 cases per surface, random, collecting every finding (see
  :mod:`tests.fuzz.harness`), for a run in the background.

``FACELENS_FUZZ_EXAMPLES=N`` sets the cases per surface in either;
``FACELENS_FUZZ_RANDOM=1`` draws random cases in ``ci`` too (Hypothesis prints
the seed of a failure); ``FACELENS_FUZZ_COLLECT=1`` collects instead of failing
at once; ``FACELENS_FUZZ_REPORT=path.json`` writes the counts there
(``bench/results/`` is ignored by git). The counts are printed at the end of
every run that fuzzed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from facelens.api.keys import Role
from facelens.api.serve import build_server
from facelens.config import MqttSettings, ServeSettings, Settings
from facelens.wiring import Components
from tests.fuzz.harness import Fuzzer, Tally, capturing_server_errors
from tests.fuzz.images import Photos
from tests.fuzz.wire import AccessKey, Call, send
from tests.fuzz.world import Credentials, World
from tests.servers.mosquitto import running_broker

PROFILES = ("ci", "long")
_TALLY = pytest.StashKey[Tally]()


def pytest_configure(config: pytest.Config) -> None:
    base: dict[str, Any] = {
        "deadline": None,
        "database": None,  # nothing written into the working tree
        "suppress_health_check": list(HealthCheck),
        "print_blob": True,
    }
    settings.register_profile("facelens-fuzz-ci", max_examples=50, derandomize=True, **base)
    settings.register_profile(
        "facelens-fuzz-long",
        max_examples=2000,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],  # collecting: nothing to shrink
        **base,
    )
    config.stash[_TALLY] = Tally()


def profile_name() -> str:
    name = os.environ.get("FACELENS_FUZZ_PROFILE", "ci")
    if name not in PROFILES:
        raise pytest.UsageError(f"FACELENS_FUZZ_PROFILE must be one of {PROFILES}, not {name!r}")
    return name


def collecting() -> bool:
    return profile_name() == "long" or os.environ.get("FACELENS_FUZZ_COLLECT") == "1"


def fuzz_settings(examples: int) -> settings:
    """The profile's settings; ``examples``: this surface's share in the ``ci`` profile."""
    name = profile_name()
    parent = settings.get_profile(f"facelens-fuzz-{name}")
    override = os.environ.get("FACELENS_FUZZ_EXAMPLES")
    count = int(override) if override else (examples if name == "ci" else parent.max_examples)
    derandomize = parent.derandomize and os.environ.get("FACELENS_FUZZ_RANDOM") != "1"
    return settings(parent, max_examples=count, derandomize=derandomize)


class Run(Protocol):
    """The ``run_fuzz`` fixture's function."""

    def __call__(
        self,
        surface: str,
        calls: st.SearchStrategy[Call],
        examples: int,
        classics: Sequence[Call] = (),
    ) -> None: ...


@pytest.fixture
def run_fuzz(fuzz: Fuzzer) -> Run:
    """``run_fuzz(surface, calls, examples, classics)``: sends the ``classics`` (known
    troublemakers, in order, every run) and then ``examples`` generated calls through the
    rule; collecting, fails at the end with every finding."""

    def run(
        surface: str,
        calls: st.SearchStrategy[Call],
        examples: int,
        classics: Sequence[Call] = (),
    ) -> None:
        tally = fuzz.tally.of(surface)

        def one(call: Call) -> None:
            tally.cases += 1
            fuzz.check(call)

        test = given(calls)(one)
        for call in reversed(classics):  # decorators apply inside out: keep their order
            test = example(call)(test)
        fuzz_settings(examples)(test)()
        fuzz.assert_clean(surface)

    return run


def _login(url: str, host: str, token: str) -> str:
    """The ``facelens_session=…`` cookie a dashboard login with ``token`` sets."""
    parts = urlsplit(url)
    answer = send(
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        Call(
            "setup",
            "POST /ui/login",
            "POST",
            "/ui/login",
            (
                ("Host", host),
                ("Origin", url),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ),
            urlencode({"token": token}).encode(),
        ),
    )
    assert answer.status == 303, answer.summary()
    return answer.headers["set-cookie"].split(";", 1)[0]


@pytest.fixture(scope="session")
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, testdata: Path
) -> Iterator[tuple[Fuzzer, Credentials, World]]:
    """The suite's one server (see the module's docstring), seeded, with its credentials."""
    people = testdata / "people"
    photos = Photos(
        (
            sorted((people / "obama").glob("*.jpg"))[0].read_bytes(),
            sorted((people / "biden").glob("*.jpg"))[0].read_bytes(),
            sorted((testdata / "noface").iterdir())[0].read_bytes(),
        )
    )
    home = tmp_path_factory.mktemp("fuzz") / "home"
    with running_broker() as broker, capturing_server_errors() as errors:
        settings_ = Settings(
            home=home,
            models_dir=None,
            mqtt=MqttSettings(url=broker.url),
            serve=ServeSettings(port=0, failed_auth_limit=1_000_000_000),
        )
        components = Components(settings_, instance="fuzz")
        admin = components.keys.create_api_key("fuzz-admin", Role.ADMIN)
        reader = components.keys.create_api_key("fuzz-reader", Role.READ)
        admin_key = components.keys.create_access_key("fuzz-sdk-admin", Role.ADMIN)
        reader_key = components.keys.create_access_key("fuzz-sdk-reader", Role.READ)
        server, app = build_server(components)
        server.start()
        try:
            tables = app.state.ctx.tables
            world = World.seed(components, tables, photos)
            host = f"127.0.0.1:{server.port}"
            credentials = Credentials(
                admin_token=admin.token.get_secret_value(),
                reader_token=reader.token.get_secret_value(),
                admin_key=AccessKey(
                    admin_key.access_key_id, admin_key.secret_access_key.get_secret_value()
                ),
                reader_key=AccessKey(
                    reader_key.access_key_id, reader_key.secret_access_key.get_secret_value()
                ),
                region=settings_.serve.region,
                admin_cookie=_login(server.url, host, admin.token.get_secret_value()),
                reader_cookie=_login(server.url, host, reader.token.get_secret_value()),
                spare_cookie=_login(server.url, host, reader.token.get_secret_value()),
            )
            fuzzer = Fuzzer(
                url=server.url,
                components=components,
                tables=tables,
                errors=errors,
                tally=request.config.stash[_TALLY],
                collect=collecting(),
                reseed=world.reseed,
            )
            yield fuzzer, credentials, world
        finally:
            server.stop()
            components.close()


@pytest.fixture
def fuzz(fuzz_server: tuple[Fuzzer, Credentials, World]) -> Fuzzer:
    return fuzz_server[0]


@pytest.fixture
def credentials(fuzz_server: tuple[Fuzzer, Credentials, World]) -> Credentials:
    return fuzz_server[1]


@pytest.fixture
def world(fuzz_server: tuple[Fuzzer, Credentials, World]) -> World:
    return fuzz_server[2]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tally = config.stash.get(_TALLY, None)
    if tally is None or not tally.surfaces:
        return
    summary = tally.as_json()
    summary["profile"] = profile_name()
    summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    terminalreporter.section("fuzz")
    for name, surface in summary["surfaces"].items():
        statuses = ", ".join(f"{k}: {v}" for k, v in surface["statuses"].items())
        terminalreporter.write_line(
            f"{name}: {surface['cases']} cases, {surface['requests']} requests "
            f"({statuses}), {surface['found']} found, {surface['seconds']} s answering"
        )
        for signature, finding in surface["findings"].items():
            terminalreporter.write_line(f"    [{finding['count']}x] {signature}")
        for signature, count in surface["noted"].items():
            terminalreporter.write_line(f"    noted, not HTTP [{count}x] {signature}")
    terminalreporter.write_line(f"total: {summary['cases']} cases, {summary['found']} found")
    report = os.environ.get("FACELENS_FUZZ_REPORT")
    if report:
        path = Path(report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + "\n")
        terminalreporter.write_line(f"written to {path}")
