"""SCRAM logins reuse the salted password of an earlier login with the same credential."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiokafka.conn
import pytest
from structlog.testing import capture_logs

from broker.errors import TransportError
from broker.kafka._scram import (
    CAPACITY,
    RememberingScram,
    forget_salted_passwords,
    remember_salted_passwords,
)
from tests.kafka_helpers import CountingHashlib

PlainScram = RememberingScram.__base__  # aiokafka's own, whatever was installed since

# RFC 7677, section 3: SCRAM-SHA-256 for user "user", password "pencil".
RFC_PASSWORD = "pencil"
NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingHashlib]:
    """PBKDF2 counted; the RFC's password registered as Accord's; aiokafka's authenticator
    as it was found put back afterwards."""
    monkeypatch.setattr(aiokafka.conn, "ScramAuthenticator", PlainScram)
    forget_salted_passwords()
    remember_salted_passwords(RFC_PASSWORD)
    counting = CountingHashlib()
    monkeypatch.setattr(aiokafka.conn, "hashlib", counting)
    yield counting
    forget_salted_passwords()


def exchange(
    cls: type[Any],
    password: str = RFC_PASSWORD,
    server_first: str = SERVER_FIRST,
    *,
    verify: bool | None = None,
) -> str:
    """The client's final message of one exchange. ``verify`` (by default: for the RFC's
    password and server-first message): raise unless the RFC's server signature verifies."""
    scram = cls(loop=None, sasl_plain_password=password, sasl_plain_username="user",
                sasl_mechanism="SCRAM-SHA-256")  # fmt: skip
    scram._nonce = NONCE  # the RFC's client nonce in place of a random one
    assert scram.first_message() == f"n,,n=user,r={NONCE}"
    scram.process_server_first_message(server_first)
    final: str = scram.final_message()
    if verify if verify is not None else (password, server_first) == (RFC_PASSWORD, SERVER_FIRST):
        scram.process_server_final_message(SERVER_FINAL)
    return final


def test_a_remembered_login_proves_exactly_what_rfc_7677_says(counted: CountingHashlib) -> None:
    assert exchange(RememberingScram) == CLIENT_FINAL
    assert exchange(RememberingScram) == CLIENT_FINAL  # from what was kept, still right
    assert counted.pbkdf2_runs == 1


def test_each_connection_of_plain_aiokafka_runs_pbkdf2_again(counted: CountingHashlib) -> None:
    """What the module is for: without it, every login pays for the PBKDF2 again."""
    exchange(PlainScram)
    exchange(PlainScram)
    assert counted.pbkdf2_runs == 2


def test_a_remembered_login_still_refuses_a_server_that_cannot_sign(
    counted: CountingHashlib,
) -> None:
    exchange(RememberingScram)
    scram = RememberingScram(
        loop=None,
        sasl_plain_password=RFC_PASSWORD,
        sasl_plain_username="user",
        sasl_mechanism="SCRAM-SHA-256",
    )
    scram._nonce = NONCE
    scram.first_message()
    scram.process_server_first_message(SERVER_FIRST)  # answered from what was kept
    assert counted.pbkdf2_runs == 1
    with pytest.raises(ValueError, match="wrong signature"):
        scram.process_server_final_message("v=" + "A" * 44)


def test_another_password_salt_or_count_is_worked_out_afresh(counted: CountingHashlib) -> None:
    exchange(RememberingScram)
    remember_salted_passwords(RFC_PASSWORD + "2")
    # The same salt and count with another password: not answered from the first one's.
    with pytest.raises(ValueError, match="wrong signature"):
        exchange(RememberingScram, RFC_PASSWORD + "2", verify=True)
    exchange(RememberingScram, server_first=SERVER_FIRST.replace("i=4096", "i=4097"))
    exchange(RememberingScram, server_first=SERVER_FIRST.replace("s=W22Z", "s=X22Z"))
    assert counted.pbkdf2_runs == 4


def test_a_login_accord_did_not_register_is_neither_kept_nor_answered(
    counted: CountingHashlib,
) -> None:
    """An agency's own clients, in a process that also publishes through the SDK."""
    exchange(RememberingScram, "host-app-secret")
    exchange(RememberingScram, "host-app-secret")
    assert counted.pbkdf2_runs == 2
    exchange(RememberingScram)
    assert counted.pbkdf2_runs == 3  # Accord's own, worked out once


@pytest.mark.parametrize("count", [1, 4095, 16385, 3_000_000])
def test_a_count_outside_kafkas_bounds_is_refused_for_accords_logins(
    counted: CountingHashlib, count: int
) -> None:
    """Too few is a proof cheap to attack offline; too many would hold every other login
    waiting on the lock the PBKDF2 runs under. An AccordError, so a command says it in one
    line (aiokafka's start lets it through; a ValueError was a traceback)."""
    with pytest.raises(TransportError, match="outside Kafka's 4096 to 16384"):
        exchange(RememberingScram, server_first=SERVER_FIRST.replace("i=4096", f"i={count}"))
    assert counted.pbkdf2_runs == 0


def test_a_result_aiokafka_keeps_elsewhere_is_not_kept_or_served(
    counted: CountingHashlib, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later aiokafka keeping the salted password under another name: its own step runs
    every time, and nothing is written where nothing would read it."""

    def elsewhere(self: Any, salt: bytes, iterations: int) -> None:
        self._other_name = counted.pbkdf2_hmac(
            self._hashname, self._sasl_plain_password, salt, iterations
        )

    monkeypatch.setattr(PlainScram, "create_salted_password", elsewhere)
    for _ in range(2):
        scram = RememberingScram(
            loop=None,
            sasl_plain_password=RFC_PASSWORD,
            sasl_plain_username="user",
            sasl_mechanism="SCRAM-SHA-256",
        )
        # Such an aiokafka need not set the old name at all (0.14 sets it to None, which a
        # check of its type alone would pass); the step is called as aiokafka calls it.
        del scram._salted_password
        scram.create_salted_password(b"salt-of-sixteen!", 4096)
        assert not hasattr(scram, "_salted_password")
        assert isinstance(scram._other_name, bytes)
    assert counted.pbkdf2_runs == 2


def test_logins_starting_together_work_a_password_out_once(counted: CountingHashlib) -> None:
    """A dozen producers start at once, each login's step on an executor thread."""
    start = threading.Barrier(8)

    def login() -> str:
        start.wait()
        return exchange(RememberingScram)

    with ThreadPoolExecutor(8) as pool:
        finals = list(pool.map(lambda _: login(), range(8)))
    assert finals == [CLIENT_FINAL] * 8
    assert counted.pbkdf2_runs == 1


def test_what_is_kept_is_bounded(counted: CountingHashlib) -> None:
    for i in range(CAPACITY + 5):
        remember_salted_passwords(f"p{i}")
        exchange(RememberingScram, password=f"p{i}")
    assert counted.pbkdf2_runs == CAPACITY + 5
    exchange(RememberingScram, password="p0")  # the oldest went first
    assert counted.pbkdf2_runs == CAPACITY + 6
    exchange(RememberingScram, password=f"p{CAPACITY + 4}")  # the newest is still there
    assert counted.pbkdf2_runs == CAPACITY + 6


def test_registering_points_aiokafka_at_the_subclass_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiokafka.conn, "ScramAuthenticator", PlainScram)
    forget_salted_passwords()
    remember_salted_passwords(RFC_PASSWORD)
    assert aiokafka.conn.ScramAuthenticator is RememberingScram
    remember_salted_passwords(RFC_PASSWORD)  # twice is once
    assert aiokafka.conn.ScramAuthenticator is RememberingScram
    forget_salted_passwords()


def test_an_authenticator_someone_else_installed_is_left_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Theirs(PlainScram):  # type: ignore[misc, valid-type]
        pass

    monkeypatch.setattr(aiokafka.conn, "ScramAuthenticator", Theirs)
    forget_salted_passwords()
    with capture_logs() as logs:
        remember_salted_passwords(RFC_PASSWORD)
        remember_salted_passwords(RFC_PASSWORD)
    assert aiokafka.conn.ScramAuthenticator is Theirs
    assert [e["event"] for e in logs].count("kafka_scram_authenticator_replaced") == 1
    forget_salted_passwords()
