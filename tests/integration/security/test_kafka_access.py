"""Kafka as separate organisations need it: TLS, one login per principal, least privilege.

A broker of this module's own, secured as the embedded default is, provisioned for the
project's bundle; each check logs in as one principal and tries one thing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from broker.config import KafkaSecurity, KafkaSettings
from broker.devkafka import EmbeddedKafka
from broker.errors import TransportError
from broker.kafka import (
    KafkaClients,
    connecting,
    missing_topics,
    read_access,
    read_client_file,
    stop_quietly,
)
from broker.policy import Policy, load_bundle
from broker.provision import provision
from broker.topics import AUDIT, CONSENT, STATE, deliver, ingress
from tests.conftest import start_kafka
from tests.kafka_helpers import read_to_end, settings_as

POLICIES = Path(__file__).resolve().parents[3] / "policies"
pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    kafka: EmbeddedKafka = start_kafka(tmp_path_factory, "kafka-sec", heap="512m")
    provision(
        load_bundle(POLICIES), kafka.client_settings(), clients_dir=kafka.security.clients_dir
    )
    yield kafka
    kafka.stop()


def _as(node: EmbeddedKafka, principal: str) -> KafkaSettings:
    return settings_as(node.bootstrap, principal)


async def _produce(settings: KafkaSettings, topic: str) -> str:
    producer = KafkaClients(settings).producer(
        f"test-{uuid.uuid4().hex[:6]}", request_timeout_ms=8000, retry_backoff_ms=100
    )
    try:
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait(topic, b"probe"), 20)
    except (KafkaError, TimeoutError) as exc:
        return type(exc).__name__
    finally:
        await producer.stop()
    return "ok"


async def _start_producer(settings: KafkaSettings) -> str:
    """What Accord says when a transactional producer starts as ``settings``' login."""
    clients = KafkaClients(settings)
    producer = clients.transactional_producer(f"test-{uuid.uuid4().hex[:6]}", "test-start")
    try:
        async with connecting(clients):
            await producer.start()
    except TransportError as exc:
        return str(exc)
    finally:
        await stop_quietly(producer)
    return "ok"


async def _fetch(settings: KafkaSettings, topic: str, group: str | None = None) -> str:
    consumer = KafkaClients(settings).consumer(
        topic, client_id="test-fetch", group=group, request_timeout_ms=8000
    )
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=2000)
    except KafkaError as exc:
        return type(exc).__name__
    finally:
        await consumer.stop()
    return "ok"


async def test_no_login_and_a_wrong_password_can_neither_produce_nor_fetch(
    node: EmbeddedKafka,
) -> None:
    wmp = _as(node, "wmp")
    plaintext = KafkaSettings(bootstrap=node.bootstrap, security_protocol=KafkaSecurity.PLAINTEXT)
    wrong = wmp.model_copy(update={"password": SecretStr("not-the-password")})
    for settings in (plaintext, wrong):
        assert await _produce(settings, ingress("wmp")) != "ok"
        assert await _fetch(settings, ingress("wmp")) != "ok"
    assert await _produce(wmp, ingress("wmp")) == "ok"  # the same topic, logged in


async def test_a_wrong_password_or_an_untrusted_ca_is_said_so_not_as_kafka_being_down(
    node: EmbeddedKafka,
) -> None:
    where = f"connecting to Kafka at {node.bootstrap}"
    wrong = _as(node, "wmp").model_copy(update={"password": SecretStr("not-the-password")})
    with pytest.raises(TransportError) as refused:
        await missing_topics(KafkaClients(wrong), [ingress("wmp")], client_id="test-wrong")
    assert str(refused.value) == f"{where}: Kafka refused the login for wmp (wrong password?)"
    system_ca = _as(node, "wmp").model_copy(update={"ca_file": None})  # not the cluster's CA
    with pytest.raises(TransportError) as untrusted:
        await missing_topics(KafkaClients(system_ca), [ingress("wmp")], client_id="test-ca")
    assert str(untrusted.value).startswith(
        f"{where}: TLS: the broker's certificate does not verify against the system's trust store"
    )


def test_provisioning_with_a_wrong_admin_password_says_the_login_was_refused(
    node: EmbeddedKafka,
) -> None:
    wrong = node.client_settings().model_copy(update={"password": SecretStr("not-the-password")})
    with pytest.raises(TransportError) as refused:
        read_access(wrong)
    assert str(refused.value) == (
        f"connecting to Kafka at {node.bootstrap}: Kafka refused the login for admin "
        "(wrong password?)"
    )


async def test_an_agency_writes_its_own_ingress_and_nothing_else(node: EmbeddedKafka) -> None:
    wmp = _as(node, "wmp")
    assert await _produce(wmp, ingress("wmp")) == "ok"
    refused = "TopicAuthorizationFailedError"
    assert await _produce(wmp, ingress("swbh")) == refused  # another agency's ingress
    assert await _produce(wmp, AUDIT) == refused
    assert await _produce(wmp, STATE) == refused  # the worker's state
    assert await _produce(wmp, CONSENT) == refused  # police record no consent in this bundle
    for topic in (deliver("sandwell-coord"), deliver("cog-tipton"), AUDIT, ingress("wmp")):
        assert await _fetch(wmp, topic) == refused, topic


async def test_only_the_admin_may_create_delete_or_alter_topics(node: EmbeddedKafka) -> None:
    from aiokafka.admin import NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    for principal in ("wmp", "worker", "console"):
        admin = KafkaClients(_as(node, principal)).admin()
        await admin.start()
        try:
            created = await admin.create_topics([NewTopic(f"rogue-{principal}", 1, 1)])
            deleted = await admin.delete_topics([AUDIT])
            altered = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, AUDIT, {"retention.ms": "1"})]
            )
        finally:
            await admin.close()
        codes = {created.topic_errors[0][1], deleted.topic_error_codes[0][1]}
        codes |= {resource[0] for resource in altered[0].resources}
        assert codes == {29}, principal  # TOPIC_AUTHORIZATION_FAILED, each time
    audit = await read_to_end(node.bootstrap, AUDIT)  # still there, as the admin sees it
    assert isinstance(audit, list)


async def test_a_hub_reads_its_own_deliveries_not_another_hubs(node: EmbeddedKafka) -> None:
    hub = _as(node, "cog-tipton")
    assert await _fetch(hub, deliver("cog-tipton"), group="cog-tipton.test") == "ok"
    assert await _fetch(hub, deliver("cog-oldbury"), group="cog-tipton.test") == (
        "TopicAuthorizationFailedError"
    )
    # Its own topic, but a group outside its own prefix.
    assert await _fetch(hub, deliver("cog-tipton"), group="someone-else") == (
        "GroupAuthorizationFailedError"
    )


async def test_suspending_a_party_and_provisioning_again_removes_its_access(
    node: EmbeddedKafka, tmp_path: Path
) -> None:
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    parties = bundle / "parties.yaml"
    text = parties.read_text()
    assert "  rwt:\n" in text
    parties.write_text(text.replace("  rwt:\n", "  rwt:\n    status: suspended\n", 1))
    suspended: Policy = load_bundle(bundle)
    rwt = _as(node, "rwt")
    assert await _produce(rwt, ingress("rwt")) == "ok"
    plan = provision(suspended, node.client_settings(), clients_dir=node.security.clients_dir)
    assert {(row[0], row[2]) for row in plan.rows()} == {("remove", "rwt")}
    assert (await _produce(rwt, ingress("rwt"))).endswith("AuthorizationFailedError")
    # Said by Accord as a refusal of rwt, not as aiokafka's exception's name.
    said = await _start_producer(rwt)
    assert said.startswith(f"connecting to Kafka at {node.bootstrap}: Kafka refused rwt "), said
    assert "no grant allows it (a suspended party holds none" in said
    # Back in the bundle, and provisioned again: the same login works again.
    provision(load_bundle(POLICIES), node.client_settings(), clients_dir=node.security.clients_dir)
    assert await _produce(rwt, ingress("rwt")) == "ok"


def _recent_librdkafka(tmp_path: Path) -> dict[str, str]:
    """An environment in which kcat loads a librdkafka that can log in to Kafka 4.

    Debian 12's kcat links librdkafka 2.0.2, whose SCRAM proof Kafka 4 rejects (a nonce bug,
    librdkafka#4895, fixed in 2.6.1; docs/operations.md says so). The confluent-kafka wheel
    ships a recent librdkafka with the same ABI: kcat runs unchanged on top of it.
    """
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    [shipped] = libs.glob("librdkafka-*.so.1")
    (tmp_path / "librdkafka.so.1").symlink_to(shipped)
    return {**os.environ, "LD_LIBRARY_PATH": str(tmp_path)}


def test_kcat_uses_the_client_files_unchanged(node: EmbeddedKafka, tmp_path: Path) -> None:
    kcat = shutil.which("kcat")
    assert kcat is not None, "make test installs Debian's kcat"
    env = _recent_librdkafka(tmp_path)
    clients = node.security.clients_dir
    marker = f"kcat-{uuid.uuid4().hex}".encode()
    # Run from the folder, as a party would: the files name the CA beside them, relatively.
    assert read_client_file(clients / "wmp.librdkafka.conf")["ssl.ca.location"] == "kafka-ca.pem"
    produced = subprocess.run(  # Debian's kcat, fixed arguments
        [kcat, "-F", "wmp.librdkafka.conf", "-P", "-t", ingress("wmp")],
        input=marker, capture_output=True, timeout=60, check=False, env=env, cwd=clients,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    seen = asyncio.run(read_to_end(node.bootstrap, ingress("wmp")))
    assert marker in [m.value for m in seen]
    refused = subprocess.run(
        [kcat, "-F", "wmp.librdkafka.conf", "-C", "-t", AUDIT, "-e", "-q"],
        capture_output=True, timeout=60, check=False, env=env, cwd=clients,
    )  # fmt: skip
    assert refused.returncode != 0
    assert b"authoriz" in refused.stderr.lower()


async def test_whether_a_party_may_write_consent_is_told_without_a_produce(
    node: EmbeddedKafka,
) -> None:
    """The gateway's pre-check (broker.gateway._consent): a party provisioning gave no grant on
    accord.consent is told False by a metadata request, a consent authority True."""
    assert await KafkaClients(_as(node, "wmp")).may_describe(CONSENT) is False
    assert await KafkaClients(_as(node, "wmp")).may_describe(ingress("wmp")) is True
    # The gateway's start check (broker.gateway._ingress): another agency's login is told no.
    assert await KafkaClients(_as(node, "swbh")).may_describe(ingress("wmp")) is False
    assert await KafkaClients(_as(node, "hv-sandwell")).may_describe(CONSENT) is True
    assert await _produce(_as(node, "hv-sandwell"), CONSENT) == "ok"
