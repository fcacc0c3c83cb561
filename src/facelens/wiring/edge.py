"""The camera side: one edge runner, from ``settings.edge``.

It assembles a dozen edge pieces (source, detector, crop check, uploader,
live view...), and only ``facelens edge`` and ``facelens up`` need them.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from facelens.config import Settings
from facelens.edge.capture import FrameFeed
from facelens.edge.detection import CropCheck, FrameDetector, build_edge_detector
from facelens.edge.names import NameBoard, RecognitionListener
from facelens.edge.reporting import EdgeStatus, Reporter, infer_topic
from facelens.edge.runner import EdgeRunner
from facelens.edge.server import ViewCredentials, ViewServer, build_app
from facelens.edge.sources import open_source, parse_source
from facelens.edge.uploads import CropBuffer, Uploader
from facelens.edge.view import LiveView
from facelens.engine.registry import build_detector
from facelens.errors import ConfigurationError
from facelens.storage.protocol import ObjectStore
from facelens.wiring.bus import Publication, names_endpoint, open_event_sink, open_publication
from facelens.wiring.lifetime import close_later
from facelens.wiring.process import ProcessRole, home_file, process_role
from facelens.wiring.stores import notifying_objects, open_raw_objects


def open_edge_runner(
    settings: Settings,
    stack: ExitStack,
    role: ProcessRole,
    publication: Publication,
    objects: ObjectStore,
    *,
    source: str,
    thing: str,
    realtime: bool = False,
    max_frames: int | None = None,
) -> EdgeRunner:
    """A runner for one camera. ``role`` (``edge-<thing>``, ``up-<thing>``) names its MQTT
    clients and its crop buffer, so two runners on one host do not share them; ``objects``:
    the notifying object store (an uploaded crop is an event for the recognizers);
    ``publication``: where its status goes (and, with a broker, where it hears names)."""
    e = settings.edge
    spec = parse_source(source)
    status = EdgeStatus(
        Reporter(
            publication.publisher,
            thing=thing,
            topic=infer_topic(e.topic, thing),
            labels_per_second=e.labels_per_second,
        )
    )
    names = NameBoard()
    listener = None
    if publication.broker is not None:  # IoT data over HTTPS cannot subscribe
        listener = RecognitionListener(
            names_endpoint(settings, role), names, topic=settings.recognizer.topic
        )
    buffer = CropBuffer(home_file(settings, f"{role.name}-crops.db"), max_crops=e.buffer_max_crops)
    close_later(stack, buffer.close)
    uploader = Uploader(
        objects,
        settings.bucket,
        buffer,
        on_uploaded=status.on_uploaded,
        on_failed=status.on_upload_failed,
        retry_max=e.reconnect_max_seconds,
    )
    view = server = None
    if e.view_port is not None:
        credentials = None
        if e.view_username is not None or e.view_password is not None:
            if e.view_username is None or e.view_password is None:
                raise ConfigurationError("Set both edge.view_username and edge.view_password")
            credentials = ViewCredentials(e.view_username, e.view_password)
        view = LiveView()
        app = build_app(
            view,
            lambda: runner.stats(),
            credentials=credentials,
            max_fps=e.view_fps,
            thing=thing,
        )
        server = ViewServer(
            app,
            host=e.view_host,
            port=e.view_port,
            credentials=credentials,
            allowed_hosts=e.view_allowed_hosts,
        )
    runner = EdgeRunner(
        thing=thing,
        settings=e,
        feed=FrameFeed(
            lambda: open_source(spec, timeout_seconds=e.stream_timeout_seconds),
            live=spec.live,
            realtime=realtime,
            on_event=status.on_source_event,
            reconnect_max_seconds=e.reconnect_max_seconds,
        ),
        detector=FrameDetector(
            build_edge_detector(settings),
            detect_side=e.detect_side,
            min_confidence=e.min_confidence,
        ),
        # The recognizer's own detector, as its engine builds it: crops it cannot find
        # a face in are not uploaded. (For HOG a second instance: ~100 MB of landmarks.)
        check=(
            CropCheck(build_detector(settings), jpeg_quality=e.jpeg_quality)
            if e.verify_crops
            else None
        ),
        uploader=uploader,
        status=status,
        names=names,
        listener=listener,
        view=view,
        server=server,
        mqtt_connected=publication.connected,
        max_frames=max_frames,
    )
    return runner


@dataclass(frozen=True)
class EdgeParts:
    """One camera's runner, the object store its crops go to (each put there is an event
    for the recognizers) and the publication its status goes to."""

    runner: EdgeRunner
    objects: ObjectStore
    publication: Publication


def open_edge(
    settings: Settings,
    stack: ExitStack,
    *,
    source: str,
    thing: str,
    realtime: bool = False,
    max_frames: int | None = None,
) -> EdgeParts:
    """A camera on its own (``facelens edge``): the process role ``edge-<thing>``, so two
    runners on one host share no MQTT client or crop buffer; its publication opened first,
    so it is stopped last and sends what is spooled."""
    role = process_role(settings, f"edge-{thing}")
    publication = open_publication(settings, stack, role)
    sink = open_event_sink(settings, stack, publication)
    objects = notifying_objects(settings, open_raw_objects(settings, stack), sink)
    runner = open_edge_runner(
        settings,
        stack,
        role,
        publication,
        objects,
        source=source,
        thing=thing,
        realtime=realtime,
        max_frames=max_frames,
    )
    return EdgeParts(runner, objects, publication)
