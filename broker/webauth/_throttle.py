"""Sign-in throttling that slows guessing down without letting anyone lock an officer out.

A hard lockout after N failures lets anyone lock every IG officer out by typing their names.
Instead (OWASP's "device cookies" scheme) an attempt is charged to one of two kinds of
budget:

- a browser that has signed in as this account before (a *known device*, proven by a signed
  cookie, :mod:`broker.webauth._devices`) is charged to its own small budget only, so what
  others do to the account never keeps its officer out;
- any other client is charged to the client's budget (its network address: a sliding window
  across every name it tries), to its own tries at the account, which after a few failures
  make its next attempt wait, doubling up to a cap, and to the account's failures from every
  unknown client: past a ceiling only many addresses together can reach, every unknown
  client waits. Slow for a guesser, never a lock: one address hammering a name (or timing
  its tries to the moment each wait ends) delays itself, never the officer's new browser.

A known device that spends its own budget counts as unknown until the window moves on, so a
stolen device cookie is worth a few guesses, not a bypass. Names are tracked whether or not
the account exists, so the throttle itself tells nobody which accounts exist. Each table is
bounded (least recently used entries go first). All of it lives in the web app process's
memory: a restart forgets it, as it forgets sessions.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from broker.webauth._users import USERNAME

__all__ = ["Attempt", "SignInThrottle", "client_key"]

CAPACITY = 10_000
_INVALID = "\x00invalid"  # one entry for every name that cannot be an account
K = TypeVar("K")
V = TypeVar("V")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def client_key(host: str | None) -> str:
    """The address a client's budget is kept under.

    An IPv6 client is counted by its /64: a single host is routinely given a whole /64, and
    counting single addresses would give it 2^64 budgets. A proxy may write an address with
    its port ("192.0.2.7:5678", "[2001:db8::1]:443"): the port goes, or each connection
    would be a new client. What is no address at all is kept as it is.
    """
    address = address_of(host)
    if address is None:
        return host or ""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def address_of(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` names, however a proxy wrote it (with a port, in brackets), an
    IPv4-mapped one as IPv4 (a dual-stack socket's peer); None if it names none."""
    try:
        address = ipaddress.ip_address(_bare(host or ""))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _bare(host: str) -> str:
    # "[v6]:port", "[v6]", "v4:port"; a bare IPv6 address has colons too, and no port.
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and "." in name and ":" not in name and port.isdigit():
        return name
    return host


class _Lru(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one sign-in attempt was charged to, or why it was refused before any check."""

    account: str
    client: str
    device: str | None  # the known device it was charged to; None: charged as unknown
    at: datetime
    refused: str | None = None  # "client" or "account": whose budget is spent


class SignInThrottle:
    """Per-client and per-account failure budgets, and a per-device one for known devices.

    An attempt is charged *before* the password is checked (:meth:`attempt`) and forgiven
    on success (:meth:`succeeded`), so concurrent guesses cannot all slip past a budget
    while the hashes run. A refused attempt is charged to nothing.
    """

    def __init__(
        self,
        *,
        client_failures: int,
        account_failures: int,
        window: timedelta,
        max_delay: timedelta,
        account_ceiling: int = 50,
        clock: Callable[[], datetime] = _utcnow,
        capacity: int = CAPACITY,
    ) -> None:
        self._client_failures = client_failures
        self._account_failures = account_failures
        self._account_ceiling = account_ceiling
        self._window = window
        self._max_delay = max_delay
        self._clock = clock
        self._clients: _Lru[str, deque[datetime]] = _Lru(capacity)
        self._devices: _Lru[str, deque[datetime]] = _Lru(capacity)
        # One client's tries at one account: the doubling wait is its own.
        self._pairs: _Lru[tuple[str, str], tuple[int, datetime]] = _Lru(capacity)
        # Every unknown client's failures at an account: the ceiling.
        self._accounts: _Lru[str, deque[datetime]] = _Lru(capacity)

    def attempt(self, name: str, client: str, device: str | None = None) -> Attempt:
        """Charge an attempt on ``name`` from ``client`` (and its known ``device``, if any)."""
        now = self._clock()
        account = name if USERNAME.fullmatch(name) else _INVALID
        if device is not None:
            failures = self._recent(self._devices, device, now)
            if len(failures) < self._account_failures:
                failures.append(now)
                self._devices.put(device, failures)
                return Attempt(account, client, device, now)
        client_failures = self._recent(self._clients, client, now)
        if len(client_failures) >= self._client_failures:
            return Attempt(account, client, None, now, refused="client")
        pair = (account, client)
        count, last = self._pairs.get(pair) or (0, now)
        if count and now - last >= max(self._window, self.delay(count)):
            count = 0  # quiet for long enough: forgotten
        if count >= self._account_failures and now - last < self.delay(count):
            return Attempt(account, client, None, now, refused="account")
        everyone = self._recent(self._accounts, account, now)
        over = len(everyone) - self._account_ceiling
        if over >= 0 and now - everyone[-1] < self._wait(over):
            return Attempt(account, client, None, now, refused="account")
        client_failures.append(now)
        self._clients.put(client, client_failures)
        self._pairs.put(pair, (count + 1, now))
        everyone.append(now)
        self._accounts.put(account, everyone)
        return Attempt(account, client, None, now)

    def succeeded(self, attempt: Attempt) -> None:
        """Forgive what ``attempt`` was charged to (a success is not a failure)."""
        if attempt.refused is not None:
            return
        if attempt.device is not None:
            self._forgive(self._devices, attempt.device, attempt.at)
            return
        self._forgive(self._clients, attempt.client, attempt.at)
        self._forgive(self._accounts, attempt.account, attempt.at)
        self._pairs.pop((attempt.account, attempt.client))

    def delay(self, failures: int) -> timedelta:
        """How long after its last failure an unknown client's next try at an account waits,
        after ``failures`` of its own there."""
        return self._wait(failures - self._account_failures)

    def _wait(self, over: int) -> timedelta:
        if over < 0:
            return timedelta(0)
        # 2 ** over overflows a timedelta long before anyone could make that many attempts.
        return min(timedelta(seconds=2 ** min(over, 40)), self._max_delay)

    def _recent(
        self, table: _Lru[str, deque[datetime]], key: str, now: datetime
    ) -> deque[datetime]:
        failures = table.get(key) or deque()
        while failures and now - failures[0] >= self._window:
            failures.popleft()
        return failures

    @staticmethod
    def _forgive(table: _Lru[str, deque[datetime]], key: str, at: datetime) -> None:
        failures = table.get(key)
        if failures is not None and at in failures:
            failures.remove(at)
