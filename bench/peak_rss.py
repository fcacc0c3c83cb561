"""Peak resident memory of a `facelens serve` process under concurrent worst-case images.

Why: every search request decodes the caller's image in full before looking
for a face, so memory per request grows with the image's pixels, not its
bytes. A 143 KB PNG of a black 7000 x 7000 picture (49 MP, under the 50 MP
limit) decodes to 147 MB of RGB, and the decoder's intermediate copies used
to multiply that; a handful of such requests at once could push a small box
into swap or the OOM killer. This benchmark shows what a burst costs.

How: for each worst-case image and each concurrency (1 and ``--concurrency``,
default 8), a fresh ``facelens serve`` subprocess (its own home, an admin
API key, a collection with one enrolled face, the engine warmed by one
normal search) receives that many simultaneous REST SearchFacesByImage
requests (``POST /api/v1/collections/<id>/faces/search``, multipart). The
server's peak resident memory is its ``VmHWM`` from ``/proc/<pid>/status``
(the kernel's high-water mark, so no sample can miss the peak), read after
the warm-up (``baseline``) and after the burst (``peak``). The images:

- ``black_png``: 7000 x 7000 RGB, all zeros, PNG at zlib level 9 (~143 KB):
  the cheapest bytes for the most pixels PNG allows under 50 MP;
- ``photo_jpeg``: a real group photo (``groups/obama_biden_1.jpg``) resized
  to 8000 x 6000 (48 MP) and saved as JPEG quality 90: a large camera photo
  with faces in it, so detection, alignment and embedding all run.

Every response's status and error code is recorded: a request refused with
an AWS-style 400 (ImageTooLargeException...) is as expected, a 5xx is a bug.
``--env NAME=VALUE`` passes settings to the servers (for instance
``FACELENS_MAX_IMAGE_PIXELS=50000000``) to compare configurations.

Run from the repository root (Linux: reads /proc)::

    python -m bench.peak_rss [--concurrency 8] [--images black_png photo_jpeg] [--env K=V]

Writes bench/results/peak_rss.json (``--name`` changes it). Takes about a
minute on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench._common import machine_facts, summarize_ms, testdata_dir, write_result

COLLECTION = "bench-peak-rss"
ENROL_PHOTO = "people/obama/obama_1.jpg"
WARM_UP_PHOTO = "people/obama/obama_2.jpg"
GROUP_PHOTO = "groups/obama_biden_1.jpg"
START_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 300.0
FACELENS = (sys.executable, "-m", "facelens")
_SERVING = re.compile(r"facelens serving on (http://\S+)")


def models_dir() -> Path:
    """YuNet's model: ``$FACELENS_MODELS_DIR``, else ``<repo>/../shared/models``."""
    configured = os.environ.get("FACELENS_MODELS_DIR")
    return Path(configured) if configured else testdata_dir().parent / "models"


def black_png() -> bytes:
    """7000 x 7000 RGB zeros as PNG (zlib level 9): 49 MP for about 143 KB."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((7000, 7000, 3), dtype=np.uint8)).save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def photo_jpeg() -> bytes:
    """A real group photo resized to 8000 x 6000 (48 MP), JPEG quality 90."""
    with Image.open(testdata_dir() / GROUP_PHOTO) as photo:
        large = photo.convert("RGB").resize((8000, 6000), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    large.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


IMAGES: dict[str, Callable[[], bytes]] = {"black_png": black_png, "photo_jpeg": photo_jpeg}


def proc_status_bytes(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid``, in bytes (/proc reports kB)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


class Server:
    """``python -m facelens serve --port 0`` in its own home, with an admin API key."""

    def __init__(self, home: Path, extra_env: dict[str, str]) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_")}
        self.env.update(FACELENS_HOME=str(home), FACELENS_MODELS_DIR=str(models_dir()), **extra_env)
        created = subprocess.run(
            [*FACELENS, "keys", "create", "--name", "bench", "--role", "admin"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=START_TIMEOUT_S,
        )
        self.token = str(_json(created.stdout)["ApiKey"])
        self.process = subprocess.Popen(
            [*FACELENS, "serve", "--port", "0"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self._wait_for_url()
        # uvicorn logs every request on stderr: keep reading so the pipe never fills.
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_url(self) -> str:
        assert self.process.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            seen.append(line)
            match = _SERVING.search(line)
            if match:
                return match.group(1)
        self.stop()
        raise RuntimeError("facelens serve did not start:\n" + "".join(seen[-20:]))

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for _ in self.process.stderr:
            pass

    def memory(self) -> dict[str, int]:
        return proc_status_bytes(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _json(text: str) -> dict[str, Any]:
    document = json.loads(text)
    assert isinstance(document, dict)
    return document


def _post(server: Server, path: str, **kwargs: Any) -> tuple[int, dict[str, Any], float]:
    """POST to the REST API; (status, JSON body, seconds)."""
    import requests

    started = time.perf_counter()
    response = requests.post(
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=REQUEST_TIMEOUT_S,
        **kwargs,
    )
    elapsed = time.perf_counter() - started
    try:
        body = response.json()
    except ValueError:
        body = {"text": response.text[:200]}
    return response.status_code, body if isinstance(body, dict) else {"body": body}, elapsed


def _search(server: Server, image: bytes) -> tuple[int, dict[str, Any], float]:
    return _post(
        server,
        f"/collections/{COLLECTION}/faces/search",
        files={"image": ("image", image, "application/octet-stream")},
    )


def _error_code(body: dict[str, Any]) -> str | None:
    error = body.get("Error")
    if isinstance(error, dict):
        return str(error.get("Code"))
    code = body.get("__type") or body.get("Code")
    return None if code is None else str(code)


def scenario(
    home: Path, image_name: str, image: bytes, concurrency: int, extra_env: dict[str, str]
) -> dict[str, Any]:
    """One fresh server, warmed, then ``concurrency`` simultaneous searches with ``image``."""
    server = Server(home, extra_env)
    try:
        status, body, _ = _post(server, "/collections", json={"CollectionId": COLLECTION})
        if status != 201:
            raise RuntimeError(f"CreateCollection: {status} {body}")
        enrol = (testdata_dir() / ENROL_PHOTO).read_bytes()
        status, body, _ = _post(
            server,
            f"/collections/{COLLECTION}/faces",
            files={"image": ("enrol.jpg", enrol, "image/jpeg")},
        )
        if status != 201:
            raise RuntimeError(f"IndexFaces: {status} {body}")
        status, body, warm_s = _search(server, (testdata_dir() / WARM_UP_PHOTO).read_bytes())
        if status != 200:
            raise RuntimeError(f"warm-up search: {status} {body}")
        baseline = server.memory()

        barrier = threading.Barrier(concurrency)

        def one(_: int) -> tuple[int, dict[str, Any], float]:
            barrier.wait()
            return _search(server, image)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(one, range(concurrency)))
        wall = time.perf_counter() - started
        after = server.memory()
        alive = server.process.poll() is None
    finally:
        server.stop()
    statuses = Counter(str(status) for status, _, _ in results)
    codes = Counter(str(_error_code(body)) for status, body, _ in results if status != 200)
    return {
        "image": image_name,
        "concurrency": concurrency,
        "baseline_rss_bytes": baseline["VmRSS"],
        "baseline_peak_rss_bytes": baseline["VmHWM"],
        "peak_rss_bytes": after["VmHWM"],
        "rss_after_bytes": after["VmRSS"],
        "peak_over_baseline_bytes": after["VmHWM"] - baseline["VmRSS"],
        "server_alive_after": alive,
        "statuses": dict(statuses),
        "error_codes": dict(codes),
        "server_errors": sum(n for status, n in statuses.items() if status.startswith("5")),
        "wall_s": round(wall, 2),
        "request": summarize_ms([elapsed for _, _, elapsed in results]),
        "warm_up_search_ms": round(warm_s * 1000.0, 1),
    }


def _mb(value: int) -> float:
    return round(value / 1e6, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="simultaneous requests")
    parser.add_argument(
        "--images", nargs="+", choices=sorted(IMAGES), default=list(IMAGES), help="which images"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="server setting"
    )
    parser.add_argument("--name", default="peak_rss", help="result file name")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    extra_env: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("FACELENS_"):
            parser.error(f"--env takes FACELENS_NAME=VALUE, not {item!r}")
        extra_env[name] = value
    if not Path("/proc/self/status").is_file():
        write_result(args.name, {"skipped": "needs Linux's /proc/<pid>/status"})
        return

    machine = machine_facts()
    started = time.perf_counter()
    images: dict[str, Any] = {}
    scenarios: list[dict[str, Any]] = []
    levels = sorted({1, args.concurrency})
    with tempfile.TemporaryDirectory(prefix="facelens-peak-rss-") as tmp:
        for image_name in args.images:
            data = IMAGES[image_name]()
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                fmt = probe.format
            images[image_name] = {"bytes": len(data), "width": width, "height": height}
            images[image_name]["format"] = fmt
            for level in levels:
                home = Path(tmp) / f"{image_name}-{level}"
                result = scenario(home, image_name, data, level, extra_env)
                shutil.rmtree(home, ignore_errors=True)
                scenarios.append(result)
                print(
                    f"{image_name} x{level}: peak {_mb(result['peak_rss_bytes'])} MB "
                    f"(baseline {_mb(result['baseline_rss_bytes'])} MB), "
                    f"statuses {result['statuses']}, {result['wall_s']} s",
                    flush=True,
                )
    summary = {
        f"{s['image']} x{s['concurrency']}": {
            "peak_rss_mb": _mb(s["peak_rss_bytes"]),
            "over_baseline_mb": _mb(s["peak_over_baseline_bytes"]),
            "statuses": s["statuses"],
            "p50_request_ms": s["request"].get("p50_ms"),
        }
        for s in scenarios
    }
    write_result(
        args.name,
        {
            "machine": machine,
            "what": (
                "Peak resident memory (VmHWM) of a `facelens serve` process receiving N "
                "simultaneous REST SearchFacesByImage requests with a worst-case image; a "
                "fresh server per scenario, warmed by one normal search"
            ),
            "server_env": extra_env,
            "images": images,
            "summary": summary,
            "scenarios": scenarios,
            "load_average_at_end_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "total_s": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
