"""How many wrong bearer tokens the gateway hears before it stops listening for a while.

A 32-character token is far beyond guessing, but nothing should let anyone who reaches the
port try tokens at full speed: a token made shorter by mistake, or read in part, would then
be found. So failures (401s) are counted over a sliding window:

- per client address (an IPv6 client by its /48, the most a site is routinely given): past
  ``per_client`` failures, every request from that address is answered 429 with
  ``Retry-After``, its token not even compared, until the oldest failure leaves the window.
  Its token is not compared because an answer that differed for the right one would let a
  guesser carry on. So a records system that keeps sending a stale token is refused even
  once it sends the right one, until the window moves on;
- across all addresses: past ``total`` failures, every client is answered 429 in the same
  way but those in ``spared`` (the agency's records systems, a setting) and those that used
  the right token in this process within ``KNOWN_FOR``, so that many addresses together
  cannot guess at the combined pace. A records system outside ``spared`` that has not been
  heard since the gateway started (a restart, a token rotation, a new system) can be
  refused while the flood lasts.

The client address is the connection's own unless the connection comes from a trusted proxy
(:func:`client_of`): only then is ``X-Forwarded-For`` read, so nobody who reaches the port
directly can name another's address and spend its budget. Every table is bounded (the least
recently used entries go first), and all of it lives in the gateway process's memory: a
restart forgets it.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette.requests import Request

from broker.config import Network
from broker.webauth import client_host, client_key

__all__ = ["KNOWN_FOR", "AuthLimit", "LimitKind", "Limited", "Network", "client_of"]

#: How long a client that used the right token counts as one of the gateway's own callers,
#: served while many addresses fail together.
KNOWN_FOR = 24 * 3600.0
_CAPACITY = 10_000
V = TypeVar("V")


def _network(key: str) -> Network | None:
    try:
        return ipaddress.ip_network(key)
    except ValueError:
        return None


def _within(key: str, ranges: Sequence[Network]) -> bool:
    network = _network(key)
    return network is not None and any(
        network.version == r.version and network.overlaps(r) for r in ranges
    )


def client_of(request: Request, hops: int, trusted: Sequence[Network]) -> str:
    """The address ``request``'s failures are counted under.

    ``X-Forwarded-For`` is read (``hops`` entries from the end) only when the connection,
    and each entry an inner proxy wrote, comes from ``trusted``: anyone else could write any
    address there (``broker.webauth.client_host``). An entry that is no address counts as
    the connection's own. IPv6 by its /48: a site is routinely given one, and counting each
    /64 of it would give it 65,536 budgets."""
    peer = client_key(request.client.host if request.client else None)
    key = client_key(client_host(request, hops, trusted))
    network = _network(key)
    if network is None:
        return peer
    if network.version == 6:
        return str(network.supernet(new_prefix=min(48, network.prefixlen)))
    return key


class LimitKind(enum.StrEnum):
    CLIENT = "client"  # this address failed too often
    ALL = "all"  # every address together failed too often, and this one is not spared


@dataclass(frozen=True, slots=True)
class Limited:
    """A request refused before its token is compared: which limit, and when to try again."""

    kind: LimitKind
    retry_after: int  # whole seconds, at least 1


class _Lru(Generic[V]):
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class AuthLimit:
    """Failed-token budgets per client address and for all of them together (see above).

    ``spared``: ranges never refused by the limit across all addresses; ``clock``: seconds,
    only ever compared (``time.monotonic`` by default; a test's own)."""

    def __init__(
        self,
        *,
        per_client: int = 5,
        total: int = 100,
        window: float = 60.0,
        spared: Sequence[Network] = (),
        clock: Callable[[], float] = time.monotonic,
        capacity: int = _CAPACITY,
    ) -> None:
        if per_client < 1 or total < 1 or window <= 0:
            raise ValueError("per_client and total at least 1, window over 0")
        self.per_client = per_client
        self.total = total
        self.window = window
        self.spared = tuple(spared)
        self._clock = clock
        self._clients: _Lru[deque[float]] = _Lru(capacity)
        self._known: _Lru[float] = _Lru(capacity)
        # Bounded by ``total``: past it, only the oldest failure's time matters.
        self._all: deque[float] = deque(maxlen=total)

    def refused(self, client: str) -> Limited | None:
        """Whether ``client``'s request is refused before its token is compared."""
        now = self._clock()
        own = self._recent(self._clients.get(client), now)
        if len(own) >= self.per_client:
            return Limited(LimitKind.CLIENT, self._wait(own[0], now))
        everyone = self._recent(self._all, now)
        if len(everyone) >= self.total and not self._spared(client, now):
            return Limited(LimitKind.ALL, self._wait(everyone[0], now))
        return None

    def failed(self, client: str) -> None:
        """``client`` sent no token, or a wrong one."""
        now = self._clock()
        own = self._recent(self._clients.get(client), now)
        own.append(now)
        self._clients.put(client, own)
        self._all.append(now)

    def succeeded(self, client: str) -> None:
        """``client`` sent the right token: one of the gateway's own callers. Its failures
        stay counted: a right token now says nothing of who sent the wrong ones."""
        self._known.put(client, self._clock())

    def _spared(self, client: str, now: float) -> bool:
        seen = self._known.get(client)
        return (seen is not None and now - seen < KNOWN_FOR) or _within(client, self.spared)

    def _recent(self, failures: deque[float] | None, now: float) -> deque[float]:
        failures = failures if failures is not None else deque()
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def _wait(self, oldest: float, now: float) -> int:
        # Until the oldest failure leaves the window, and with it the refusal.
        return max(1, math.ceil(oldest + self.window - now))
