"""Crops reach the store through a bounded disk buffer: none lost while it is down, oldest
dropped (and counted) when the buffer is full, the rest kept on disk across a restart."""

from __future__ import annotations

import threading
from pathlib import Path

from facelens.aws_clients import AwsClientOptions
from facelens.edge.crops import PendingCrop
from facelens.edge.uploads import CropBuffer, Uploaded, Uploader, UploadFailed
from facelens.errors import ServiceUnavailableException
from facelens.storage.memory import MemoryObjectStore
from tests.servers._common import free_port

BUCKET = "crops"


def crop(n: int) -> PendingCrop:
    return PendingCrop(f"faces/1_1/0_0/{n:013d}_{n}.jpg", b"\xff\xd8jpeg%d" % n, {"thing": "t"})


class Events:
    def __init__(self) -> None:
        self.uploaded: list[Uploaded] = []
        self.failed: list[UploadFailed] = []
        self.changed = threading.Condition()

    def on_uploaded(self, item: Uploaded) -> None:
        with self.changed:
            self.uploaded.append(item)
            self.changed.notify_all()

    def on_failed(self, item: UploadFailed) -> None:
        with self.changed:
            self.failed.append(item)
            self.changed.notify_all()

    def wait(self, predicate: object, timeout: float = 20.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)  # type: ignore[arg-type]


def test_buffer_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    buffer = CropBuffer(tmp_path / "crops.db", max_crops=3)
    for n in range(5):
        buffer.put(crop(n))
    assert len(buffer) == 3
    assert buffer.dropped == 2
    oldest = buffer.oldest()
    assert oldest is not None
    assert oldest.crop.key == crop(2).key
    assert oldest.crop.metadata == {"thing": "t"}
    buffer.close()
    reopened = CropBuffer(tmp_path / "crops.db", max_crops=3)
    assert (len(reopened), reopened.dropped) == (3, 2)
    reopened.close()


def test_uploads_in_order_with_latency(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    store.create_bucket(BUCKET)
    events = Events()
    uploader = Uploader(
        store, BUCKET, CropBuffer(tmp_path / "b.db"), on_uploaded=events.on_uploaded
    )
    uploader.start()
    for n in range(5):
        uploader.submit(PendingCrop(crop(n).key, crop(n).body, {}, captured_monotonic=0.0))
    assert uploader.flush(10)
    uploader.stop()
    assert [u.key for u in events.uploaded] == [crop(n).key for n in range(5)]
    assert all(u.latency is not None and u.latency > 0 for u in events.uploaded)
    got = store.get_object(BUCKET, crop(3).key)
    assert got.body == crop(3).body
    assert got.info.content_type == "image/jpeg"
    assert uploader.stats.uploaded == 5
    assert uploader.stats.latency_count == 5


def test_store_down_then_up_loses_nothing(
    tmp_path: Path, moto_server: str, aws_env: dict[str, str]
) -> None:
    """A moto server of the test's own (``moto_server`` only checks moto is there), stopped
    while crops arrive and started again on the same port."""
    from moto.server import ThreadedMotoServer

    from facelens.storage.s3 import S3ObjectStore

    s3_port = free_port()

    endpoint = f"http://127.0.0.1:{s3_port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    server.start()
    store = S3ObjectStore(
        aws=AwsClientOptions(endpoint_url=endpoint, region="us-east-1", max_attempts=1)
    )
    store.create_bucket(BUCKET)
    server.stop()  # the store is now down

    events = Events()
    uploader = Uploader(
        store,
        BUCKET,
        CropBuffer(tmp_path / "b.db"),
        on_uploaded=events.on_uploaded,
        on_failed=events.on_failed,
        retry_initial=0.05,
        retry_max=0.2,
    )
    uploader.start()
    for n in range(10):
        assert uploader.submit(crop(n))
    assert events.wait(lambda: len(events.failed) >= 1)
    failure = events.failed[0]
    assert isinstance(failure.error, ServiceUnavailableException)
    assert failure.retrying
    assert len(events.failed) == 1  # reported once per outage, not once per retry
    assert events.uploaded == []
    assert uploader.stats.pending == 10

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    server.start()  # moto keeps its state in the process: the bucket is still there
    try:
        assert events.wait(lambda: len(events.uploaded) == 10)
        uploader.stop()
        keys = [o.key for o in store.list_objects(BUCKET).objects]
        assert sorted(keys) == sorted(crop(n).key for n in range(10))
        assert [u.key for u in events.uploaded] == [crop(n).key for n in range(10)]
        assert uploader.stats.failures >= 1
        assert uploader.stats.dropped == 0
    finally:
        store.close()
        server.stop()


def test_full_buffer_while_down_drops_oldest_and_keeps_rest_for_next_start(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    from facelens.storage.s3 import S3ObjectStore

    nothing_there = f"http://127.0.0.1:{free_port()}"
    down = S3ObjectStore(
        aws=AwsClientOptions(endpoint_url=nothing_there, region="us-east-1", max_attempts=1)
    )
    path = tmp_path / "b.db"
    uploader = Uploader(down, BUCKET, CropBuffer(path, max_crops=4), retry_initial=0.05)
    uploader.start()
    for n in range(10):
        uploader.submit(crop(n))
    uploader.stop(flush_timeout=0.5)  # cannot flush: the rest stays on disk
    down.close()
    assert uploader.stats.dropped == 6
    assert uploader.stats.pending == 4

    store = MemoryObjectStore()
    store.create_bucket(BUCKET)
    events = Events()
    again = Uploader(store, BUCKET, CropBuffer(path, max_crops=4), on_uploaded=events.on_uploaded)
    again.start()
    assert events.wait(lambda: len(events.uploaded) == 4)
    again.stop()
    assert [u.key for u in events.uploaded] == [crop(n).key for n in range(6, 10)]
    assert all(u.latency is None for u in events.uploaded)  # from an earlier run
