"""Strangers not seen for ``retention.strangers_hours`` are forgotten whole by the retention job.

Real crops through the real recognizer make two strangers; the job, run at
chosen times, leaves them alone within the limit and forgets them after it:
their faces (embeddings), sightings and crops go, the same way as with
``facelens forget``, and a later sighting of the same person starts afresh.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from facelens.config import RetentionSettings
from facelens.people.stranger_model import companion_id
from tests.integration.people.test_strangers import Crops, people_crops, recognize  # noqa: F401
from tests.integration.recognizer.conftest import (
    COLLECTION,
    OpenPipeline,
    open_pipeline,  # noqa: F401 (a fixture)
)

DAYS_30 = RetentionSettings(
    identified_crops_hours=None, stranger_crops_hours=None, strangers_hours=30 * 24
)


def test_strangers_are_forgotten_a_month_after_their_last_sighting(
    open_pipeline: OpenPipeline,  # noqa: F811
    people_crops: Crops,  # noqa: F811
) -> None:
    p = open_pipeline(None, retention=DAYS_30)
    c = p.wired
    c.recognizer.recognizer.prepare()
    p.start_worker()
    kit, alex = people_crops["kit_harington"], people_crops["alex_lacamoire"]
    keys = recognize(p, [("kit", kit[0]), ("alex", alex[0]), ("kit", kit[1])])
    strangers = {s.stranger_id for s in c.people.strangers.list(COLLECTION)}
    assert len(strangers) == 2
    now = datetime.now(UTC)

    within = c.recognizer.retention.run_once(now + timedelta(days=29))
    assert within.forgotten_strangers == ()
    assert {s.stranger_id for s in c.people.strangers.list(COLLECTION)} == strangers

    dry = c.recognizer.retention.run_once(now + timedelta(days=31), dry_run=True)
    assert set(dry.forgotten_strangers) == strangers
    assert len(c.people.strangers.list(COLLECTION)) == 2  # a dry run forgets nothing

    report = c.recognizer.retention.run_once(now + timedelta(days=31))
    assert set(report.forgotten_strangers) == strangers
    assert c.people.strangers.list(COLLECTION) == []
    assert c.collections.store.list_faces(companion_id(COLLECTION), max_results=100).faces == []
    bucket = c.settings.bucket
    for key in keys:
        assert not c.stores.objects.list_objects(bucket, prefix=key).objects, key
    assert c.stores.history.ledger.sightings(sorted(strangers)) == []
    assert report.as_json()["ForgottenStrangers"] == sorted(report.forgotten_strangers)

    # Kit comes back: a new anonymous person, not the forgotten one.
    recognize(p, [("kit", kit[2])])
    (back,) = c.people.strangers.list(COLLECTION)
    assert back.stranger_id not in strangers
