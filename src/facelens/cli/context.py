"""Wires settings into services for one CLI invocation. Constructing loads no model:
the engine prepares itself on first use, so `collections list` stays instant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelens.engine.images import DecodedImage, read_image_file
from facelens.history.audit import AuditAction, cli_actor
from facelens.wiring import Components
from facelens.wiring import build_analyzer as build_analyzer


@dataclass
class Context(Components):
    def read_image(self, path: str) -> DecodedImage:
        """Reads an image file (``fileb://`` prefix accepted, as the AWS CLI writes it)."""
        return read_image_file(
            Path(path.removeprefix("fileb://")),
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
        )

    def audit_action(
        self,
        action: AuditAction,
        target: str,
        *,
        collection_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Records what this command did in the audit log, as ``cli:<os user>``. Call it
        after a change succeeded, and before printing what was read."""
        self.audit.record(cli_actor(), action, target, collection_id=collection_id, details=details)

    def audit_forget(
        self, collection_id: str, person_id: str, face_ids: Sequence[str], **details: Any
    ) -> None:
        """Records that ``person_id`` was forgotten, under its pseudonym (never in clear),
        then redacts the person and their faces in every earlier entry."""
        self.audit.record_forget(
            cli_actor(),
            person_id,
            also=face_ids,
            collection_id=collection_id,
            details={"Faces": len(face_ids), **details},
        )
