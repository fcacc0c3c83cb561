"""Form bodies: ``multipart/form-data`` with photos and fields, framed well or badly."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.fuzz.images import Photos, images
from tests.fuzz.strategies import text


@dataclass(frozen=True)
class Part:
    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None


def multipart(parts: Sequence[Part], boundary: str) -> bytes:
    out: list[bytes] = []
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if part.content_type is not None:
            head += f"Content-Type: {part.content_type}\r\n"
        out.append(head.encode("utf-8", "surrogatepass") + b"\r\n" + part.value + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def field_text() -> st.SearchStrategy[str]:
    """A form field's name or file name: what goes between double quotes."""
    return text(max_size=20).map(lambda t: t.replace('"', "").replace("\r", "").replace("\n", ""))


@st.composite
def multipart_body(
    draw: st.DrawFn,
    photos: Photos,
    *,
    files: Sequence[str],
    fields: Mapping[str, st.SearchStrategy[str]],
) -> tuple[bytes, str]:
    """(body, content type) of a form with ``files`` (images) and ``fields``; at times
    a field goes missing, repeats, or the multipart framing itself is broken."""
    boundary = draw(st.sampled_from([uuid.uuid4().hex, "x", "-" * 70, "a b"]))
    parts: list[Part] = []
    for name in files:
        for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
            filename = draw(st.sampled_from(["photo.jpg", "", "../../x.png"]) | field_text())
            content_type = draw(st.sampled_from(["image/jpeg", "image/png", None, "text/plain"]))
            parts.append(Part(name, draw(images(photos)), filename, content_type))
    for name, values in fields.items():
        if draw(st.booleans()):
            parts.append(Part(name, draw(values).encode("utf-8", "surrogatepass")))
    if draw(st.integers(0, 6)) == 0:
        parts.append(Part(draw(field_text()), draw(st.binary(max_size=30))))
    body = multipart(parts, boundary)
    content_type = f"multipart/form-data; boundary={boundary}"
    broken = draw(st.integers(0, 10))
    if broken == 0:
        body = body[: draw(st.integers(0, len(body)))]
    elif broken == 1:
        content_type = "multipart/form-data"
    elif broken == 2:
        content_type = f"multipart/form-data; boundary={boundary}x"
    elif broken == 3:
        content_type = draw(st.sampled_from(["application/json", "text/plain", "", "image/jpeg"]))
    return body, content_type
