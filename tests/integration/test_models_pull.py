"""`facelens models pull` against a real HTTP server on loopback: Range, redirects, bad servers.

Nothing is downloaded from outside. The server hands out a tiny but real
ONNX model (one input of 1x3x112x112, like SFace's) built here with the
``onnx`` package; its catalogue entry is a copy of SFace's with the tiny
file's size and hash, passed to the pull as the catalogue entry would be.
The end-to-end CLI runs use the real catalogue: YuNet's real bytes (from
the shared models directory) served on loopback, and a wrong file as SFace.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import http.server
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facelens.engine.model_files import (
    SFACE,
    ModelEntry,
    model_state,
    pull,
)
from facelens.errors import (
    BadDigestException,
    ConfigurationError,
    ConflictException,
    ServiceUnavailableException,
)

ERROR_EXIT = 254


def tiny_embedder(side: int = 112) -> bytes:
    """A valid ONNX graph: a 1x3xSxS input times a constant of its shape (~150 kB at 112)."""
    scale = numpy_helper.from_array(
        np.linspace(0.5, 1.5, 3 * side * side, dtype=np.float32).reshape(1, 3, side, side),
        name="scale",
    )
    graph = helper.make_graph(
        [helper.make_node("Mul", ["data", "scale"], ["fc1"])],
        "tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3, side, side])],
        initializer=[scale],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


def entry_for(data: bytes, **changes: Any) -> ModelEntry:
    """SFace's entry (embedder, 112x112 input), pinned to ``data`` instead."""
    return dataclasses.replace(
        SFACE,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        **changes,
    )


@dataclass
class Behaviour:
    """How the server answers; tests change it between pulls."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    truncate_after: int | None = None
    """Send this many body bytes, then drop the connection (Content-Length says all)."""
    partial_from: int | None = None
    """Answer 206 with the bytes from here, whatever was asked."""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) of every GET, in order."""


class ModelServer(http.server.ThreadingHTTPServer):
    behaviour: Behaviour


class Handler(http.server.BaseHTTPRequestHandler):
    server: ModelServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        behaviour.requests.append((self.path, self.headers.get("Range")))
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/files/" + self.path.removeprefix("/redirect/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = behaviour.files.get(self.path.removeprefix("/files/"))
        if data is None:
            self.send_error(404)
            return
        asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start: int | None = None
        if behaviour.partial_from is not None:
            start = behaviour.partial_from
        elif asked is not None and behaviour.honour_range:
            start = int(asked.group(1))
        if start is not None:
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start or 0 :]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if behaviour.truncate_after is not None:
            self.wfile.write(body[: behaviour.truncate_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@dataclass
class Served:
    behaviour: Behaviour
    base: str


@pytest.fixture
def served() -> Iterator[Served]:
    server = ModelServer(("127.0.0.1", 0), Handler)
    server.behaviour = Behaviour()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Served(server.behaviour, f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def model() -> bytes:
    return tiny_embedder()


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def test_right_hash_puts_the_file_in_place_verified(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    directory = tmp_path / "models"
    seen: list[tuple[int, int]] = []

    umask = os.umask(0o077)  # a private umask must not make the model unreadable to a service
    try:
        result = pull(
            entry, directory, url=served.base + "files/", progress=lambda *p: seen.append(p)
        )
    finally:
        os.umask(umask)

    assert result.path.read_bytes() == model
    assert (result.already_present, result.resumed_from, result.downloaded) == (
        False,
        0,
        len(model),
    )
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o644
    assert leftovers(directory) == [entry.file_name]
    assert seen[-1] == (len(model), len(model))
    state = model_state(entry, directory)
    assert (state.present, state.verified, state.size) == (True, True, len(model))
    # A second pull finds it and asks the server nothing.
    served.behaviour.requests.clear()
    again = pull(entry, directory, url=served.base + "files/")
    assert again.already_present
    assert served.behaviour.requests == []


def test_wrong_hash_leaves_nothing_behind(served: Served, model: bytes, tmp_path: Path) -> None:
    entry = entry_for(model)
    altered = bytearray(model)
    altered[len(altered) // 2] ^= 0xFF  # same size, one byte different
    served.behaviour.files[entry.file_name] = bytes(altered)
    directory = tmp_path / "models"

    with pytest.raises(BadDigestException) as raised:
        pull(entry, directory, url=served.base + "files/")

    assert raised.value.code == "BadDigest"
    assert entry.sha256 in raised.value.message
    assert leftovers(directory) == []
    assert not model_state(entry, directory).present


def test_wrong_size_is_refused_before_the_body(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model + b"extra bytes"
    directory = tmp_path / "models"

    with pytest.raises(BadDigestException, match=f"{len(model) + 11} bytes"):
        pull(entry, directory, url=served.base + "files/")
    assert leftovers(directory) == []


def test_truncated_download_resumes_with_a_range_request(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    directory = tmp_path / "models"
    half = len(model) // 2
    served.behaviour.truncate_after = half

    with pytest.raises(ServiceUnavailableException, match="run the pull again to resume"):
        pull(entry, directory, url=served.base + "files/")
    part = directory / (entry.file_name + ".part")
    assert part.read_bytes() == model[:half]
    assert not (directory / entry.file_name).exists()
    assert model_state(entry, directory).partial == half

    served.behaviour.truncate_after = None
    served.behaviour.requests.clear()
    result = pull(entry, directory, url=served.base + "files/")

    assert served.behaviour.requests == [(f"/files/{entry.file_name}", f"bytes={half}-")]
    assert (result.resumed_from, result.downloaded) == (half, len(model) - half)
    assert result.path.read_bytes() == model
    assert leftovers(directory) == [entry.file_name]


def test_a_server_that_ignores_range_restarts_from_zero(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    served.behaviour.honour_range = False
    directory = tmp_path / "models"
    directory.mkdir()
    third = len(model) // 3
    (directory / (entry.file_name + ".part")).write_bytes(model[:third])

    result = pull(entry, directory, url=served.base + "files/")

    assert served.behaviour.requests[-1][1] == f"bytes={third}-"  # asked, was refused
    assert (result.resumed_from, result.downloaded) == (0, len(model))
    assert result.path.read_bytes() == model
    assert leftovers(directory) == [entry.file_name]


def test_a_partial_file_longer_than_the_model_restarts_from_zero(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / (entry.file_name + ".part")).write_bytes(model + b"junk")

    result = pull(entry, directory, url=served.base + "files/")

    assert served.behaviour.requests == [(f"/files/{entry.file_name}", None)]
    assert result.path.read_bytes() == model


def test_a_resumed_partial_file_of_other_bytes_fails_and_is_deleted(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / (entry.file_name + ".part")).write_bytes(b"\0" * 100)

    with pytest.raises(BadDigestException):
        pull(entry, directory, url=served.base + "files/")
    assert leftovers(directory) == []
    # The next pull starts afresh and succeeds.
    assert pull(entry, directory, url=served.base + "files/").path.read_bytes() == model


def test_a_complete_partial_file_is_verified_and_put_in_place_without_a_request(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / (entry.file_name + ".part")).write_bytes(model)  # a pull stopped before rename

    result = pull(entry, directory, url=served.base + "files/")

    assert served.behaviour.requests == []
    assert (result.resumed_from, result.downloaded) == (len(model), 0)
    assert leftovers(directory) == [entry.file_name]


def test_a_directory_that_cannot_be_made_is_a_configuration_error(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    (tmp_path / "a file").write_bytes(b"")  # not a directory, even for root

    with pytest.raises(ConfigurationError, match="Not a directory"):
        pull(entry, tmp_path / "a file" / "models", url=served.base + "files/")
    assert served.behaviour.requests == []


def test_a_range_answer_for_other_bytes_restarts_from_zero(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    served.behaviour.partial_from = 0  # 206 from byte 0, whatever was asked
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / (entry.file_name + ".part")).write_bytes(model[:1000])

    result = pull(entry, directory, url=served.base + "files/")

    assert [range_ for _, range_ in served.behaviour.requests] == ["bytes=1000-", None]
    assert (result.resumed_from, result.path.read_bytes()) == (0, model)

    # A server that answers part of the file when asked for all of it is refused, not looped on.
    served.behaviour.partial_from = 10
    result.path.unlink()
    with pytest.raises(ServiceUnavailableException, match="when asked for all of it"):
        pull(entry, directory, url=served.base + "files/")


def test_redirects_are_followed_and_keep_the_range(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / (entry.file_name + ".part")).write_bytes(model[:1000])

    result = pull(entry, directory, url=served.base + "redirect/" + entry.file_name)

    name = entry.file_name
    assert served.behaviour.requests == [
        (f"/redirect/{name}", "bytes=1000-"),
        (f"/files/{name}", "bytes=1000-"),
    ]
    assert (result.resumed_from, result.path.read_bytes()) == (1000, model)


def test_a_model_of_the_wrong_input_shape_is_not_put_in_place(
    served: Served, tmp_path: Path
) -> None:
    small = tiny_embedder(side=64)  # its pinned hash matches, but 64x64 is not SFace's input
    entry = entry_for(small)
    served.behaviour.files[entry.file_name] = small
    directory = tmp_path / "models"

    with pytest.raises(ConfigurationError, match=r"shape \(1, 3, 64, 64\), not Nx3x112x112"):
        pull(entry, directory, url=served.base + "files/")
    assert leftovers(directory) == []


def test_unreachable_or_missing_sources_are_service_unavailable(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    with pytest.raises(ServiceUnavailableException, match="HTTP 404"):
        pull(entry, tmp_path / "models", url=served.base + "files/")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(ServiceUnavailableException, match="cannot download"):
        pull(entry, tmp_path / "models", url=f"http://127.0.0.1:{port}/", timeout_s=5)


def test_a_second_pull_of_the_same_file_at_once_is_refused(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    directory = tmp_path / "models"
    directory.mkdir()
    with (directory / (entry.file_name + ".part")).open("ab") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ConflictException):
            pull(entry, directory, url=served.base + "files/")
    assert served.behaviour.requests == []


def test_an_altered_file_in_place_is_listed_unverified_and_replaced_by_a_pull(
    served: Served, model: bytes, tmp_path: Path
) -> None:
    entry = entry_for(model)
    served.behaviour.files[entry.file_name] = model
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / entry.file_name).write_bytes(model[:-1] + b"\0")
    assert (model_state(entry, directory).present, model_state(entry, directory).verified) == (
        True,
        False,
    )

    pull(entry, directory, url=served.base + "files/")
    assert model_state(entry, directory).verified


# The command as a user runs it: a real process, the real catalogue.


def facelens(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facelens", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_pulls_yunet_and_lists_it_present_and_verified(
    served: Served, models_dir: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    yunet = (models_dir / "face_detection_yunet_2023mar.onnx").read_bytes()
    served.behaviour.files["face_detection_yunet_2023mar.onnx"] = yunet
    env = {**cli_env, "FACELENS_MODELS_DIR": str(tmp_path / "models")}

    pulled = facelens("models", "pull", "yunet", "--url", served.base + "files/", env=env)
    assert pulled.returncode == 0, pulled.stderr
    document = json.loads(pulled.stdout)
    assert document["Models"][0]["Downloaded"] == len(yunet)
    assert (tmp_path / "models" / "face_detection_yunet_2023mar.onnx").read_bytes() == yunet

    listed = facelens("models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    models = {model["Name"]: model for model in json.loads(listed.stdout)["Models"]}
    assert (models["yunet"]["Present"], models["yunet"]["Verified"]) == (True, True)
    assert models["yunet"]["Licence"] == "MIT"
    assert (models["sface"]["Present"], models["sface"]["Verified"]) == (False, False)
    assert models["sface"]["SourceUrl"].startswith("https://github.com/opencv/opencv_zoo/")


def test_cli_wrong_file_is_an_aws_style_error_and_leaves_nothing(
    served: Served, model: bytes, cli_env: dict[str, str], tmp_path: Path
) -> None:
    served.behaviour.files[SFACE.file_name] = model  # not SFace
    env = {**cli_env, "FACELENS_MODELS_DIR": str(tmp_path / "models")}

    done = facelens("models", "pull", "sface", "--url", served.base + "files/", env=env)

    assert done.returncode == ERROR_EXIT, done.stderr
    error = json.loads(done.stderr.strip().splitlines()[-1])["Error"]
    assert error["Code"] == "BadDigest"
    assert leftovers(tmp_path / "models") == []

    unknown = facelens("models", "pull", "arcface", env=env)
    assert unknown.returncode == ERROR_EXIT
    assert json.loads(unknown.stderr.strip().splitlines()[-1])["Error"] == {
        "Code": "InvalidParameterException",
        "Message": "unknown model 'arcface'; known: sface, yunet",
    }

    two = facelens("models", "pull", "sface", "yunet", "--url", served.base + "x.onnx", env=env)
    assert two.returncode == ERROR_EXIT
    assert "ending in '/'" in json.loads(two.stderr.strip().splitlines()[-1])["Error"]["Message"]
