"""A console's chain and instance (``accord console --instance``), and what a console whose
chain another console took over says and does (the command line's refusal of a bad instance:
tests/unit/cli/test_console_instance_cli.py)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.audit import AuditRecord, ChainWriter, KeystoreAuditVerifier
from broker.config import ConsoleSettings
from broker.console import DEMO_INSTANCE, ConsoleDeps, UserFile, check_instance, console_chain
from broker.console import create_app as console_app
from broker.console._instance import FenceWatch
from broker.errors import Fenced, UsageError
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.provision._plan import CONSOLE_TRANSACTIONAL_IDS
from broker.webauth import device_key
from tests.unit.console.conftest import IndexingSink, sign_in

HOST = socket.gethostname()


def test_a_console_without_an_instance_keeps_the_chain_of_its_host() -> None:
    assert console_chain() == f"console:{HOST}"
    assert console_chain(host="ig-1") == "console:ig-1"


def test_each_instance_has_a_chain_of_its_own_on_the_same_host() -> None:
    chains = {console_chain(None), console_chain("second"), console_chain(DEMO_INSTANCE)}
    assert chains == {f"console:{HOST}", f"console:{HOST}/second", f"console:{HOST}/demo"}


def test_no_host_s_plain_chain_is_another_host_s_instance_nor_the_command_line_s() -> None:
    """'/' is never in a host name: ig.cli's chain, or the command line's on host ig, is
    no instance's of ig."""
    instance = console_chain("cli", host="ig")
    assert instance == "console:ig/cli"
    assert instance not in {console_chain(host="ig.cli"), console_chain(host="ig-cli")}


def test_every_console_s_transactional_id_is_under_the_prefix_its_login_is_granted() -> None:
    for instance in (None, "second", DEMO_INSTANCE, "a" * 32):
        assert f"accord-audit-{console_chain(instance)}".startswith(CONSOLE_TRANSACTIONAL_IDS)
    assert CONSOLE_TRANSACTIONAL_IDS == "accord-audit-console:"


@pytest.mark.parametrize("name", ["b", "second", "ig-2", "0", "a" * 32])
def test_an_instance_of_lower_case_letters_digits_and_hyphens_is_taken(name: str) -> None:
    assert check_instance(name) == name


@pytest.mark.parametrize(
    "name", ["", "-b", "Second", "ig_2", "ig.2", "ig/2", "ig 2", "ig:2", "a" * 33, "b\n"]
)
def test_any_other_instance_is_refused_in_one_line(name: str) -> None:
    with pytest.raises(UsageError, match=r"^--instance .*: a console instance is 1 to 32") as e:
        check_instance(name)
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError):
        console_chain(name)


class FencedSink(IndexingSink):
    """A sink another console took over: every append is refused as Fenced."""

    fenced = False

    async def append(self, build: Callable[[ChainWriter], list[AuditRecord]]) -> list[AuditRecord]:
        if self.fenced:
            raise Fenced("writing to accord.audit at k:9092: another process took over this "
                         "transactional id")  # fmt: skip
        return await super().append(build)


@pytest.fixture
def fenced_client(
    store: AuditStore, users: UserFile, keys: FileKeyStore, audit_home: Path,
    indexed: list[AuditRecord], clock: Callable[[], object],
) -> tuple[TestClient, FencedSink, FenceWatch]:  # fmt: skip
    sink = FencedSink(store, keys, clock)  # type: ignore[arg-type]  # the conftest's Clock
    watch = FenceWatch("console:ig-1/second")
    deps = ConsoleDeps(
        store=store, audit=sink, users=users,
        linkage_key=FileKeyStore(audit_home / "keys").linkage_key(),
        device_key=device_key(keys, "console", users.path, create=True),
        verifier=KeystoreAuditVerifier(keys), settings=ConsoleSettings(),
        clock=clock, chain=watch.chain, on_fenced=watch,  # type: ignore[arg-type]  # Clock
    )  # fmt: skip
    return TestClient(console_app(deps), base_url="http://127.0.0.1:8765"), sink, watch


def test_a_fenced_console_says_another_console_took_its_chain_not_that_kafka_is_away(
    fenced_client: tuple[TestClient, FencedSink, FenceWatch],
) -> None:
    client, sink, watch = fenced_client
    token = sign_in(client)
    sink.fenced = True
    with capture_logs() as logs:
        pages = [client.get(page) for page in ("/", "/overrides", "/chains")]
        pages.append(client.post("/chains/verify", data={"csrf": token}))
    for r in pages:
        assert r.status_code == 503
        assert "Another console took over this console&#39;s audit log" in r.text
        assert "console:ig-1/second" in r.text
        assert "accord console --instance NAME" in r.text
        assert "unreachable" not in r.text
    # One line, however many pages found it out; none blaming Kafka.
    said = [(e["event"], e["log_level"]) for e in logs]
    assert said == [("console_fenced", "error")]
    assert "--instance NAME" in logs[0]["reason"]
    assert watch.fenced.is_set()
    with pytest.raises(Fenced, match=r"^another console is writing the audit chain console:ig-1/"):
        watch.check()


def test_a_console_not_fenced_says_kafka_is_unreachable_and_carries_on(
    fenced_client: tuple[TestClient, FencedSink, FenceWatch],
) -> None:
    client, sink, watch = fenced_client
    sign_in(client)
    sink.down = True
    r = client.get("/")
    assert r.status_code == 503
    assert "the audit topic is unreachable" in r.text
    assert not watch.fenced.is_set()
    watch.check()  # nothing to stop for
