"""When built parts are closed: on the caller's ExitStack, best effort."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack

_log = logging.getLogger(__name__)


def close_later(stack: ExitStack, close: Callable[[], None]) -> None:
    """Runs ``close`` when ``stack`` closes: in the reverse order of registration, so after
    whatever was opened later on top of this part. A failure is logged (debug) and does not
    keep the parts opened before it from closing: closing is best effort at shutdown."""

    def quietly() -> None:
        try:
            close()
        except Exception:  # best effort: the process is going away
            _log.debug("closing failed: %r", close, exc_info=True)

    stack.callback(quietly)
