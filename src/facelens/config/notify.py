"""``Settings.notify`` (``FACELENS_NOTIFY``, a JSON list): who is alerted, and when."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr

from facelens.config.section import Section


class NotifyRule(StrEnum):
    EVERYONE = "everyone"
    UNKNOWN = "unknown"
    NAMED = "named"


class NotifyChannel(Section):
    """One notification channel: an apprise URL or an SNS topic ARN, with its rule."""

    url: SecretStr = Field(
        description=(
            "apprise URL (mailto://, ntfy://, slack://, tgram://, json://, ...) or an AWS SNS "
            "topic ARN (arn:aws:sns:...). Secret: such URLs carry tokens."
        )
    )
    rule: NotifyRule = Field(
        default=NotifyRule.EVERYONE,
        description="Who triggers it: 'everyone', 'unknown' faces only, or 'named' people only.",
    )
    cooldown_seconds: float = Field(
        default=300.0,
        ge=0,
        description="At most one alert per person (or per 'unknown') per channel in this time.",
    )
