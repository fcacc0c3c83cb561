"""How many image pixels one process decodes and analyses at once: a weighted semaphore.

Why: an image's memory grows with its pixels, not with its bytes. A 143 KB
PNG of a black 7000 x 7000 picture is 49 MP: decoding it peaks at about
7 bytes per pixel (Pillow's own 4-byte-per-pixel copy plus our 3-byte RGB
array, see :mod:`facelens.engine.images`), 0.35 GB, and the RGB array (3
bytes per pixel) stays alive while faces are detected and embedded. Without
a bound, N simultaneous requests cost N times that; eight such requests took
a server past 4.7 GB. With a :class:`PixelBudget`, requests whose pixels do
not fit wait their turn instead, so the images' memory stays under about
``limit`` x 7 bytes however many requests arrive.

Weights are pixels (width x height from the image header). An image larger
than the whole budget is let in alone (its weight is capped at the limit),
so the budget never refuses an image the pixel limit accepts. Waiters are
served first come, first served, so a large image is not starved by a
stream of small ones. A thread that already holds part of the budget and
asks again (an analysis inside an analysis) is let in at once: waiting on
itself would deadlock.

Nothing happens at import time: :func:`shared_pixel_budget` makes the
process's budget on first use.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from facelens.errors import InvalidParameterException, ThrottlingException

__all__ = ["PixelBudget", "shared_pixel_budget"]


class PixelBudget:
    """At most ``limit`` pixels held at once across the threads of this process.

    limit: pixels (width x height summed over the images held), at least 1.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise InvalidParameterException(f"A pixel budget must be at least 1, not {limit}.")
        self.limit = int(limit)
        self._condition = threading.Condition()
        self._in_flight = 0
        self._queue: deque[object] = deque()
        self._holders = threading.local()

    @property
    def in_flight(self) -> int:
        """Pixels held right now (each image's weight, capped at ``limit``)."""
        with self._condition:
            return self._in_flight

    @property
    def waiting(self) -> int:
        """Callers queued for their turn right now."""
        with self._condition:
            return len(self._queue)

    @contextmanager
    def hold(self, pixels: int, *, wait_seconds: float | None = None) -> Iterator[None]:
        """Holds ``pixels`` of the budget for the ``with`` block, waiting for room first.

        wait_seconds: the longest wait, in seconds (None: as long as it takes).
        Past it, ThrottlingException: the caller should retry later, as AWS
        SDKs do on their own for that code.
        """
        weight = min(max(int(pixels), 1), self.limit)
        self._acquire(weight, wait_seconds)
        depth = getattr(self._holders, "depth", 0)
        self._holders.depth = depth + 1
        try:
            yield
        finally:
            self._holders.depth = depth
            with self._condition:
                self._in_flight -= weight
                self._condition.notify_all()

    def _acquire(self, weight: int, wait_seconds: float | None) -> None:
        with self._condition:
            if getattr(self._holders, "depth", 0) > 0:
                self._in_flight += weight  # nested: waiting would wait on ourselves
                return
            deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
            ticket = object()
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._in_flight + weight > self.limit:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise ThrottlingException(
                            f"Too many image pixels are being analysed at once "
                            f"({self._in_flight} of this process's {self.limit} are in use, "
                            f"{len(self._queue) - 1} other images are waiting); try again later."
                        )
                    self._condition.wait(remaining)
                self._in_flight += weight
            finally:
                self._queue.remove(ticket)
                # The next in line may now fit (or be first): let everyone recheck.
                self._condition.notify_all()


_budgets: dict[int, PixelBudget] = {}
_budgets_lock = threading.Lock()


def shared_pixel_budget(limit: int) -> PixelBudget:
    """This process's budget of ``limit`` pixels, made on first use and shared by every caller.

    Keyed by the limit: every analyzer built from the same settings shares one
    budget; a test asking for another limit gets its own.
    """
    with _budgets_lock:
        budget = _budgets.get(limit)
        if budget is None:
            budget = _budgets[limit] = PixelBudget(limit)
        return budget
