"""The fuzz suite's servers, its Hypothesis profiles, and the per-surface counts.

One real server per backend for the whole session (:mod:`tests.fuzz.servers`):
SQLite stores, and PostgreSQL ones; the tests that reach the stores run
against both (their counts say ``@postgres`` for the second), the others
against SQLite only.

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
(``bench/results/`` is ignored by git); ``FACELENS_FUZZ_TRACE=path`` appends
every request to that file before it is sent (the last one is the culprit when
the process dies). The counts are printed at the end of every run that fuzzed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from facelens.collection.analysis import FaceAnalyzer
from tests.fuzz.harness import Fuzzer, ServerErrors, Tally, capturing_server_errors
from tests.fuzz.images import Photos
from tests.fuzz.servers import BACKENDS, Target, serving
from tests.fuzz.wire import Call
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
        tally = fuzz.tally.of(fuzz.surface(surface))

        def one(call: Call) -> None:
            tally.cases += 1
            fuzz.check(call)

        test = given(calls)(one)
        for call in reversed(classics):  # decorators apply inside out: keep their order
            test = example(call)(test)
        fuzz_settings(examples)(test)()
        fuzz.assert_clean(fuzz.surface(surface))

    return run


@dataclass
class Shared:
    """What the suite's servers share: one broker, one error log, the photos, one engine."""

    broker_url: str
    errors: ServerErrors
    photos: Photos
    tally: Tally
    analyzer: FaceAnalyzer | None = None

    def serve(
        self, backend: str, home: Path, database_url: str | None = None
    ) -> AbstractContextManager[Target]:
        return serving(
            backend,
            home=home,
            broker_url=self.broker_url,
            database_url=database_url,
            photos=self.photos,
            errors=self.errors,
            tally=self.tally,
            collect=collecting(),
            analyzer=self.analyzer,
        )


@pytest.fixture(scope="session")
def fuzz_shared(request: pytest.FixtureRequest, testdata: Path) -> Iterator[Shared]:
    people = testdata / "people"
    photos = Photos(
        (
            sorted((people / "obama").glob("*.jpg"))[0].read_bytes(),
            sorted((people / "biden").glob("*.jpg"))[0].read_bytes(),
            sorted((testdata / "noface").iterdir())[0].read_bytes(),
        )
    )
    with running_broker() as broker, capturing_server_errors() as errors:
        yield Shared(broker.url, errors, photos, request.config.stash[_TALLY])


@pytest.fixture(scope="session")
def sqlite_target(
    fuzz_shared: Shared, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The server on SQLite stores, for the whole session."""
    with fuzz_shared.serve("sqlite", tmp_path_factory.mktemp("fuzz-sqlite") / "home") as target:
        fuzz_shared.analyzer = fuzz_shared.analyzer or target.analyzer
        yield target


@pytest.fixture(scope="session")
def postgres_target(
    fuzz_shared: Shared, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[Target]:
    """The server on PostgreSQL stores (a database of its own), for the whole session."""
    import psycopg

    name = f"fuzz_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    home = tmp_path_factory.mktemp("fuzz-postgres") / "home"
    with fuzz_shared.serve("postgres", home, database_url) as target:
        fuzz_shared.analyzer = fuzz_shared.analyzer or target.analyzer
        yield target
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which stores the server under test keeps: each store-touching test runs on both;
    a test that does not reach the stores parametrizes ``backend`` itself."""
    backend: str = request.param
    return backend


@pytest.fixture
def target(request: pytest.FixtureRequest, backend: str) -> Target:
    """The session's server on ``backend``, started on first use."""
    started: Target = request.getfixturevalue(f"{backend}_target")
    return started


@pytest.fixture
def fuzz(target: Target) -> Fuzzer:
    return target.fuzz


@pytest.fixture
def credentials(target: Target) -> Credentials:
    return target.credentials


@pytest.fixture
def world(target: Target) -> World:
    return target.world


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
