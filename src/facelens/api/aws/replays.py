"""Refusing replays of signed requests that change something.

A SigV4 signature (:mod:`facelens.api.aws.sigv4`) stays valid for the 15 minutes AWS
allows for clock skew, so a captured request could be sent again. Reads may be (they change
nothing); a request that changes something (:func:`mutating`) is accepted
once: its signature is remembered in a :class:`ReplayCache` until it
expires. AWS itself has no such check, so the rules are ours, and they
must let a legitimate client through: botocore signs each attempt anew, but
``X-Amz-Date`` counts whole seconds and the headers that differ per call and
per attempt (``amz-sdk-invocation-id``, ``amz-sdk-request``) are added after
signing, so two identical calls, or a call and its retry, within one second
carry one signature, which the server cannot tell from a replay. Hence:

* A repeat is executed only as an immediate duplicate of an operation whose
  repeat changes nothing (:func:`repeatable`: creating what now exists,
  deleting what is gone, writing the same item again): the very next
  mutating request the server accepts, within :data:`REPEAT_GRACE` of the
  first use. It is then just what a client sending twice would get (a
  second CreateCollection meets ResourceAlreadyExistsException). A captured
  request sent later, or after anything else changed (a DeleteCollection
  after the collection was made again), is refused.
* Every other repeat, and any repeat of IndexFaces or an IoT publish (each
  run adds a face, a message), is refused with ThrottlingException (400),
  AWS's code that botocore retries (legacy and standard modes, every
  service), signing again. The refusal leaves :data:`REUSE_PAUSE` after the
  request came (the route waits, :func:`facelens.api.aws.protocol.run_signed`),
  so the retry is signed in a later second, has a signature of its own and
  goes through. A replay gains nothing from retrying.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from facelens.errors import SignatureReusedException, ThrottlingException

REPLAY_CACHE_LIMIT = 100_000
"""How many used signatures a :class:`ReplayCache` holds at most: 100,000 mutating requests
in 15 minutes (111 a second, sustained) at about 360 bytes each (measured: 250 for the
entry, 113 for the signature's string), some 36 MB when full."""

REPEAT_GRACE = timedelta(seconds=2)
"""How long after a signature's first use an immediate duplicate of a repeatable operation
is still taken for the client sending twice: same-second signatures are made under a
second apart, plus a second for the two requests' different travel and queueing."""

REUSE_PAUSE = timedelta(seconds=1)
"""How long the refusal of a reused signature is held back: the repeat was signed in the
same second as the first use, so whatever the client signs after this is signed in a
later second (a whole second later on any clock)."""

_READ_PREFIXES = ("Describe", "List", "Get", "Search", "Compare", "Detect")
_READ_OPERATIONS = frozenset({"Scan", "Query"})
_REPEATABLE_PREFIXES = ("Create", "Delete", "Put", "Associate", "Disassociate")


def mutating(operation: str) -> bool:
    """Whether a JSON-protocol operation (the X-Amz-Target after its prefix) may change
    something, so that an exact replay of it must be refused.

    Rekognition and DynamoDB name their reads Describe*, List*, Get*, Search*,
    Compare*, Detect*, Scan and Query; everything else (Create*, Delete*,
    IndexFaces, PutItem, and any operation not known here) counts as a change.
    """
    return not (operation.startswith(_READ_PREFIXES) or operation in _READ_OPERATIONS)


def repeatable(operation: str) -> bool:
    """Whether running a mutating operation twice in a row changes no more than running it
    once: Create* (the second finds it exists), Delete* (finds it gone), PutItem (writes
    the same item), Associate*/Disassociate*. Not IndexFaces (a new face each time), nor
    any operation not known here."""
    return operation.startswith(_REPEATABLE_PREFIXES)


@dataclass(frozen=True)
class _Use:
    expires: datetime
    """When the request's signature expires (its time + 15 minutes): forgotten after."""
    first: datetime
    repeatable: bool


class ReplayCache:
    """Signatures of mutating requests already accepted, each until its request expires.

    One per server (this process' memory: several processes behind one
    address would each accept a replay once). Bounded in time (an entry goes
    when its request is more than 15 minutes old, as the request is then
    refused anyway) and in count (``limit``). When full it refuses new
    requests rather than forget a signature that could then be replayed.
    Both refusals are ThrottlingException, which SDKs retry, signing anew
    (the module's docstring has the rules). Thread-safe.
    """

    def __init__(self, limit: int = REPLAY_CACHE_LIMIT) -> None:
        self.limit = limit
        self._uses: dict[str, _Use] = {}
        self._by_expiry: list[tuple[datetime, str]] = []  # a heap: the soonest to expire first
        self._last: str | None = None
        """The signature of the mutating request accepted last."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._uses)

    def claim(
        self, signature: str, *, expires: datetime, now: datetime, repeatable: bool = False
    ) -> None:
        """Accept a request signed with ``signature``, valid until ``expires``;
        ``repeatable``: the operation's immediate repeat changes nothing
        (:func:`repeatable`). SignatureReusedException for a refused repeat,
        ThrottlingException if ``limit`` unexpired signatures are held."""
        with self._lock:
            while self._by_expiry and self._by_expiry[0][0] < now:
                _, old = heapq.heappop(self._by_expiry)
                del self._uses[old]
            use = self._uses.get(signature)
            if use is not None:
                immediate = self._last == signature and (
                    timedelta(0) <= now - use.first <= REPEAT_GRACE
                )
                if use.repeatable and immediate:
                    return
                raise SignatureReusedException(
                    "This signature has already been used: a signed request that changes "
                    "something is accepted once. Retry: a request signed again (in a later "
                    "second: X-Amz-Date counts whole seconds) is accepted."
                )
            if len(self._uses) >= self.limit:
                raise ThrottlingException(
                    f"Too many signed requests that change something in the last 15 minutes "
                    f"({self.limit}); retry later"
                )
            self._uses[signature] = _Use(expires, now, repeatable)
            heapq.heappush(self._by_expiry, (expires, signature))
            self._last = signature
