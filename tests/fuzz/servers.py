"""The fuzzed servers: ``facelens serve`` on SQLite or on PostgreSQL stores, seeded, keyed.

Each is the server ``facelens serve`` runs (:func:`facelens.api.serve.build_server`,
uvicorn on a loopback port), publishing to a real Mosquitto broker, with
admin and read-only API keys, admin and read-only SigV4 access keys, and
dashboard sessions for both. The failed authentication limit is lifted
(``serve.failed_auth_limit``): with the default 10 a minute, the invalid
credentials the fuzz sends would throttle every later request to 429 and the
fuzz would stop reaching anything.

On ``postgres`` the collections and the profiles live in PostgreSQL (the
stores that differ: PostgreSQL refuses what SQLite takes, such as NUL in
text); the audit log, the ledger and the keys are SQLite files in either.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from facelens.access.keys import Role
from facelens.api.serve import build_server
from facelens.collection.analysis import FaceAnalyzer
from facelens.config import MqttSettings, ServeSettings, Settings
from facelens.wiring.process import process_role
from facelens.wiring.server import open_server_bundles
from tests.fuzz.harness import Fuzzer, ServerErrors, Tally
from tests.fuzz.images import Photos
from tests.fuzz.wire import AccessKey, Call, send
from tests.fuzz.world import Credentials, World

BACKENDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class Target:
    """A started, seeded server: what a fuzz test sends to, with what, about what."""

    fuzz: Fuzzer
    credentials: Credentials
    world: World
    analyzer: FaceAnalyzer


def _login(fuzz: Fuzzer, token: str) -> str:
    """The ``facelens_session=…`` cookie a dashboard login with ``token`` sets."""
    answer = send(
        fuzz.host,
        fuzz.port,
        Call(
            "setup",
            "POST /ui/login",
            "POST",
            "/ui/login",
            (
                ("Host", fuzz.host_header),
                ("Origin", fuzz.origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ),
            urlencode({"token": token}).encode(),
        ),
    )
    assert answer.status == 303, answer.summary()
    return answer.headers["set-cookie"].split(";", 1)[0]


@contextmanager
def serving(
    backend: str,
    *,
    home: Path,
    broker_url: str,
    database_url: str | None,
    photos: Photos,
    errors: ServerErrors,
    tally: Tally,
    collect: bool,
    analyzer: FaceAnalyzer | None = None,
) -> Iterator[Target]:
    """A started server on ``backend`` (``database_url``: PostgreSQL's, for ``postgres``);
    ``analyzer``: an engine already loaded (one per process is enough), else its own."""
    stores = {"collections_url": database_url, "profiles_url": database_url}
    settings = Settings(
        home=home,
        models_dir=None,
        mqtt=MqttSettings(url=broker_url),
        serve=ServeSettings(port=0, failed_auth_limit=1_000_000_000),
        **(stores if backend == "postgres" else {}),  # type: ignore[arg-type]
    )
    stack = ExitStack()
    role = process_role(settings, f"fuzz-{backend}")
    bundles = open_server_bundles(settings, stack, role, analyzer=analyzer)
    admin = bundles.keys.create_api_key("fuzz-admin", Role.ADMIN)
    reader = bundles.keys.create_api_key("fuzz-reader", Role.READ)
    admin_key = bundles.keys.create_access_key("fuzz-sdk-admin", Role.ADMIN)
    reader_key = bundles.keys.create_access_key("fuzz-sdk-reader", Role.READ)
    server, app = build_server(bundles)
    server.start()
    try:
        tables = app.state.parts.tables()
        world = World.seed(bundles, tables, photos)
        fuzz = Fuzzer(
            url=server.url,
            bundles=bundles,
            tables=tables,
            errors=errors,
            tally=tally,
            collect=collect,
            reseed=world.reseed,
            backend=backend,
        )
        admin_token = admin.token.get_secret_value()
        reader_token = reader.token.get_secret_value()
        credentials = Credentials(
            admin_token=admin_token,
            reader_token=reader_token,
            admin_key=AccessKey(
                admin_key.access_key_id, admin_key.secret_access_key.get_secret_value()
            ),
            reader_key=AccessKey(
                reader_key.access_key_id, reader_key.secret_access_key.get_secret_value()
            ),
            region=settings.serve.region,
            admin_cookie=_login(fuzz, admin_token),
            reader_cookie=_login(fuzz, reader_token),
            spare_cookie=_login(fuzz, reader_token),
        )
        yield Target(fuzz, credentials, world, bundles.analyzer())
    finally:
        server.stop()
        stack.close()
