"""Edge runner frames per second on one core, per detector and frame size; frame-to-store latency.

Why: the edge runner must keep up with a camera on the hardware the user
owns (target: at least 25 frames per second at 640x360 on one core), and a
face must reach the store quickly enough for "well under a second" end to
end.

How: the two test clips (Hamilton, 640x360, and facenet-pytorch, 1920x1080:
380 frames with one to seven faces) are resized to 640x360 and 1280x720 and
written as MPEG-4 files, and ``facelens edge``'s runner (the same object the
CLI builds: decode, detection on a copy of ``detect_side`` 640 px, tracking,
crop picking and verification, JPEG, the disk buffer and the upload to a
local object store) runs over each, as fast as it can, in a process pinned to
one core with OpenCV limited to one thread. fps counts from the first
frame to the last (model loading excluded).

Latency: the Hamilton clip played at its frame rate (``--realtime``), with
the time from a frame's capture to its crop being in the store, with the
default settings (a visit's first identifiable look goes in the frame it is
seen; before visits, a half-second best-of window made every first crop wait).

Run from the repository root::

    python -m bench.edge_fps [--repeat 3] [--no-latency]

Writes bench/results/edge_fps.json. YuNet runs only when its model is in
``$FACELENS_MODELS_DIR`` (default ../shared/models).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT, machine_facts, summarize_ms, testdata_dir, write_result

SIZES = [(640, 360), (1280, 720)]
CLIPS = ["short_hamilton_clip.mp4", "facenet_pytorch_clip.mp4"]


def models_dir() -> Path:
    configured = os.environ.get("FACELENS_MODELS_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "models"


def write_clip(out: Path, size: tuple[int, int], clips: list[Path]) -> int:
    """The clips resized to ``size``, one after the other, as MPEG-4 at 25 fps; frame count."""
    import cv2

    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, size)
    frames = 0
    for clip in clips:
        capture = cv2.VideoCapture(str(clip))
        while True:
            ok, image = capture.read()
            if not ok:
                break
            writer.write(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            frames += 1
        capture.release()
    writer.release()
    return frames


def _one_run(video: str, home: str, detector: str, realtime: bool, queue: Any) -> None:
    """In a child pinned to CPU 0: one runner over ``video``; its figures onto ``queue``."""
    os.sched_setaffinity(0, {0})
    import cv2

    cv2.setNumThreads(1)
    from contextlib import ExitStack

    from facelens.bus.publisher import MemoryPublisher
    from facelens.config import EdgeSettings, Settings
    from facelens.wiring.edge import open_edge

    settings = Settings(
        home=Path(home),
        models_dir=models_dir(),
        detector=detector,
        edge=EdgeSettings(view_port=None, stats_seconds=3600),
    )
    with ExitStack() as stack:  # the process role edge-bench, as `facelens edge --thing bench`
        edge = open_edge(settings, stack, source=video, thing="bench", realtime=realtime)
        runner = edge.runner
        summary = runner.run()
        stats = runner.stats()
        publisher = edge.publication.publisher
        latencies = []
        if isinstance(publisher, MemoryPublisher):
            for message in publisher.messages:
                body = message.json()
                if body.get("status") == "uploaded" and body.get("latency_ms") is not None:
                    latencies.append(body["latency_ms"] / 1000.0)
    queue.put(
        {
            "frames": summary.frames,
            "dropped": summary.dropped,
            "fps": round(summary.fps, 2),
            "detect_mean_ms": round(
                stats.detect_seconds_sum / max(stats.detect_count, 1) * 1000, 2
            ),
            "faces_detected": stats.faces_detected,
            "tracks": summary.tracks,
            "crops": summary.crops,
            "uploaded": summary.uploaded,
            "frame_to_store": summarize_ms(latencies),
        }
    )


def run_once(video: Path, detector: str, *, realtime: bool = False) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    with tempfile.TemporaryDirectory() as home:
        process = context.Process(
            target=_one_run, args=(str(video), home, detector, realtime, queue)
        )
        process.start()
        result: dict[str, Any] = queue.get(timeout=1200)
        process.join(60)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs per configuration (median).")
    parser.add_argument(
        "--no-latency",
        action="store_true",
        help="skip the real-time latency runs (bench.up_latency measures end to end)",
    )
    args = parser.parse_args(argv)
    from facelens.engine.yunet import find_model

    detectors = ["hog"] + (["yunet"] if find_model(models_dir()) else [])
    clips = [testdata_dir() / "video" / name for name in CLIPS]
    throughput = []
    latency = []
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in SIZES:
            video = Path(tmp) / f"clips-{width}x{height}.mp4"
            frames = write_clip(video, (width, height), clips)
            for detector in detectors:
                runs = [run_once(video, detector) for _ in range(args.repeat)]
                fps = sorted(r["fps"] for r in runs)
                median = runs[[r["fps"] for r in runs].index(fps[len(fps) // 2])]
                throughput.append(
                    {
                        "detector": detector,
                        "size": f"{width}x{height}",
                        "frames": frames,
                        "fps_median": fps[len(fps) // 2],
                        "fps_min": fps[0],
                        "fps_max": fps[-1],
                        **{k: v for k, v in median.items() if k not in ("fps", "frame_to_store")},
                    }
                )
                print(throughput[-1])
        hamilton = clips[0]
        for detector in [] if args.no_latency else detectors:
            result = run_once(hamilton, detector, realtime=True)
            latency.append(
                {
                    "detector": detector,
                    "size": "640x360",
                    "crops": result["crops"],
                    "frames_dropped": result["dropped"],
                    "frame_to_store": result["frame_to_store"],
                }
            )
            print(latency[-1])
    write_result(
        "edge_fps",
        {
            "detect_side": 640,
            "one_core": "process pinned to CPU 0 (sched_setaffinity), cv2.setNumThreads(1)",
            "throughput": throughput,
            "latency_realtime": latency,
            "machine": machine_facts(),
        },
    )


if __name__ == "__main__":
    main()
