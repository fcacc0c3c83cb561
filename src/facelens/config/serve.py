"""``Settings.serve`` (``FACELENS_SERVE__*``): the HTTP API, the Rekognition endpoint and the
dashboard, and the cameras it shows."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from facelens.config.hosts import host_names
from facelens.config.section import Section


class Camera(Section):
    """An edge runner's live view, shown on the dashboard."""

    name: str = Field(min_length=1, description="The camera's thing name.")
    url: str = Field(description="Its live view, e.g. 'http://127.0.0.1:8554/stream.mjpg'.")


class ServeSettings(Section):
    """`facelens serve`: the HTTP API, the Rekognition endpoint and the dashboard."""

    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address to listen on. Without API keys (`facelens keys create`) only loopback is "
            "allowed, and every request is trusted."
        ),
    )
    port: int = Field(default=8080, ge=0, le=65535, description="Port; 0 picks a free one.")
    max_upload_bytes: int = Field(
        default=15 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted (photos, JSON with base64 images), bytes.",
    )
    failed_auth_limit: int = Field(
        default=10,
        ge=1,
        description=(
            "Failed authentications allowed per client address per minute; beyond it the "
            "client gets ThrottlingException (HTTP 429) until the minute has passed."
        ),
    )
    session_hours: float = Field(
        default=12.0, gt=0, description="How long a dashboard login lasts, hours."
    )
    collection_id: str | None = Field(
        default=None,
        description="Collection the dashboard enrols into (default: recognizer.collection_id).",
    )
    region: str = Field(
        default="us-east-1",
        description="Region the Rekognition endpoint answers for (SigV4 credential scope).",
    )
    cameras: list[Camera] = Field(
        default_factory=list, description="Edge runners' live views shown on the dashboard."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names the server answers to besides loopback ones (localhost, 127.x, ::1) "
            "and host (any IP address too when host is 0.0.0.0 or ::), on any port: e.g. a "
            "reverse proxy's public name or this machine's LAN name. A request whose Host "
            "header names another is refused (403), so a web page cannot reach the server "
            "through DNS rebinding. Browser origins with these names count as the server's "
            "own. JSON list in the environment: FACELENS_SERVE__ALLOWED_HOSTS="
            "'[\"faces.example.org\"]'."
        ),
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Reverse proxies (IP addresses or networks, e.g. '127.0.0.1' or '10.0.0.0/8') "
            "whose X-Forwarded-For and X-Forwarded-Proto are believed: requests from them "
            "count (for the failed-authentication limit, the audit log) as coming from the "
            "address they forward for. None by default: the headers are ignored, since any "
            "client can send them. JSON list in the environment: "
            "FACELENS_SERVE__TRUSTED_PROXIES='[\"127.0.0.1\"]'."
        ),
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        return host_names(names)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{proxy!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                ) from None
        return [proxy.strip() for proxy in proxies]
