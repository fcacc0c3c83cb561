"""The profile store port. SQLite by default; PostgreSQL for several hosts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from facelens.profiles.types import Profile, ProfilePage


class ProfileStore(Protocol):
    """Items keyed by FaceId or UserId.

    Errors: ``InvalidParameterException`` for a bad id, item or page token;
    ``ServiceUnavailableException`` when the database cannot be reached;
    ``StorageError`` for any other back-end failure.
    """

    def put(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        """Stores the item whole, replacing any earlier one (DynamoDB's PutItem)."""
        ...

    def update(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        """Sets the given top-level attributes, keeping the others (creates the item if absent)."""
        ...

    def get(self, profile_id: str) -> Profile | None:
        """The item, or None: a missing profile is an ordinary answer, not an error."""
        ...

    def delete(self, profile_id: str) -> bool:
        """Deletes the item; True if there was one."""
        ...

    def list(self, *, max_results: int = 100, next_token: str | None = None) -> ProfilePage:
        """Items in id order; ``next_token`` resumes after the last one returned."""
        ...

    def close(self) -> None: ...
