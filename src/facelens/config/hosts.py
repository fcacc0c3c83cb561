"""Host names as settings accept them (``serve.allowed_hosts``, ``edge.view_allowed_hosts``).

Both servers compare a request's Host header against such a list to refuse
DNS rebinding, so a listed name is normalised here once, the way the header
is compared: lower case, no trailing dot, no IPv6 brackets.
"""

from __future__ import annotations

import ipaddress


def host_names(names: list[str]) -> list[str]:
    """Host names as a Host header carries them, compared lower case without a trailing dot
    or IPv6 brackets; a port, path or wildcard is refused (a Host check matches names only)."""
    cleaned = []
    for name in names:
        bare = name.strip().lower().rstrip(".")
        if bare.startswith("[") and bare.endswith("]"):
            bare = bare[1:-1]
        if not bare or any(c in bare for c in "/@*?#[] \t") or (":" in bare and not _is_ip(bare)):
            raise ValueError(f"{name!r} is not a host name (no port, path or wildcard)")
        cleaned.append(bare)
    return cleaned


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
