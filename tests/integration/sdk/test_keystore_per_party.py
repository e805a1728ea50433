"""With one keystore per party, a hub reads its own deliveries and nobody else's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import pytest

from broker.config import EnvelopeSettings
from broker.envelope import Opener
from broker.errors import EnvelopeError
from broker.keys import FileKeyStore, init_keystores
from broker.topics import ACCESS, deliver
from tests.integration.sdk.test_publish_cli import _run
from tests.integration.sdk.test_roundtrip import _delivery, _raw, produce, seal_delivery
from tests.kafka_helpers import admin_env

pytestmark = pytest.mark.usefixtures("sdk_topics")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("per-party") / "keys"
    init_keystores(keys, ["wmp", "hub-p", "hub-b"], passphrase=None, kem=EnvelopeSettings().kem)
    return keys


@pytest.fixture
def broker_env(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, tmp_path: Path) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))  # replay memory, not ~/.cache
    for name, value in admin_env(kafka_bootstrap).items():
        monkeypatch.setenv(name, value)


async def _sealed_to_hub_a(root: Path, bootstrap: str) -> str:
    """The worker, from its own keystore, seals a delivery to hub-p's public key."""
    delivery = _delivery(str(uuid.uuid4()), "hub-p")
    sealed = seal_delivery(FileKeyStore(root / "worker"), delivery)
    await produce(bootstrap, deliver("hub-p"), (sealed.value, sealed.headers))
    return delivery.event_id


async def _tail_hub_a(keystore: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    """``accord tail --as hub-p`` with ``keystore`` as the keys folder, in a fresh group."""
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(keystore))
    group = f"hub-p.tail-{uuid.uuid4().hex[:6]}"
    return await _run(["tail", "--as", "hub-p", "--group", group, "--idle", "3", *extra])


async def test_a_hub_opens_its_deliveries_with_its_own_keystore(
    root: Path,
    broker_env: None,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event_id = await _sealed_to_hub_a(root, kafka_bootstrap)
    # The keys folder holds one keystore per principal: the CLI picks hub-p's own.
    code = await _tail_hub_a(root, monkeypatch, "--json", "--by", "hub-p/duty-3")
    printed = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert code == 0
    assert event_id in [p["event_id"] for p in printed]
    # Each record opened is acknowledged to the worker as opened by --by (the console's
    # "never opened" list counts these).
    worker = Opener("worker", FileKeyStore(root / "worker"))
    acks = []
    for value, headers in await _raw(kafka_bootstrap, ACCESS):
        with contextlib.suppress(EnvelopeError):  # acks sealed to other tests' worker keys
            acks.append(json.loads(worker.open_kafka(value, headers, topic=ACCESS).payload))
    assert {"event_id": event_id, "recipient": "hub-p", "by": "hub-p/duty-3"}.items() <= next(
        a for a in acks if a["event_id"] == event_id
    ).items()


@pytest.mark.parametrize("holder", ["hub-b", "worker", "governance"])
async def test_no_other_keystore_can_read_as_hub_a(
    holder: str,
    root: Path,
    broker_env: None,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _sealed_to_hub_a(root, kafka_bootstrap)
    code = await _tail_hub_a(root / holder, monkeypatch)
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code != 0
    assert len(err) == 1
    assert "no private key for hub-p" in err[0]
    assert "Traceback" not in captured.err
    # And the keystore really cannot open what was sealed to hub-p.
    store = FileKeyStore(root / holder)
    assert store.decryption_key(store.current_encryption_key("hub-p").key_id) is None


async def test_the_worker_keystore_cannot_open_a_hub_delivery_even_from_the_sdk(
    root: Path, kafka_bootstrap: str
) -> None:
    """Below the CLI: the envelope itself refuses, with the opaque error of any bad record."""
    await _sealed_to_hub_a(root, kafka_bootstrap)
    raw = await _raw(kafka_bootstrap, deliver("hub-p"))
    assert raw, "the sealed deliveries reached the topic"
    opener = Opener("hub-p", FileKeyStore(root / "worker"))
    for value, headers in raw:
        with pytest.raises(EnvelopeError):
            await asyncio.to_thread(opener.open_kafka, value, headers, topic=deliver("hub-p"))
