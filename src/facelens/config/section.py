"""The base of every settings section: unknown fields refused, values frozen.

A section is one nested model of :class:`~facelens.config.settings.Settings`
(``FACELENS_<SECTION>__<FIELD>`` in the environment). Refusing unknown
fields is why it exists: a misspelt setting must fail at start-up, not be
ignored while a default quietly applies.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section: unknown fields are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
