"""A processor over the shared example bundle, real keys, and no Kafka."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from broker.audit import ChainWriter, KeystoreAuditSigner
from broker.config import EnvelopeSettings, KemSuite
from broker.keys import FileKeyStore
from broker.pipeline import Context, Linker, Metrics, Processor, WorkerState
from broker.policy import Policy, load_bundle

AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ENVELOPE = EnvelopeSettings(kem=KemSuite.X25519)  # fast keys; the KEM choice is not under test


@pytest.fixture(scope="session")
def example_policy(shared_dir: Path) -> Policy:
    return load_bundle(shared_dir / "examples" / "policies")


@pytest.fixture(scope="session")
def pipeline_keys(tmp_path_factory: pytest.TempPathFactory, example_policy: Policy) -> FileKeyStore:
    store = FileKeyStore(tmp_path_factory.mktemp("keys"), create=True)
    for party in [*example_policy.bundle.parties, "worker", "governance", "audit"]:
        store.ensure_party(party, kem=KemSuite.X25519)
    return store


@pytest.fixture
def make_processor(example_policy: Policy, pipeline_keys: FileKeyStore) -> Callable[..., Processor]:
    def make(
        state: WorkerState | None = None, checkpoint_every: int = 1000, policy: Policy | None = None
    ) -> Processor:
        ctx = Context(
            policy=policy or example_policy,
            keys=pipeline_keys,
            linker=Linker(b"k" * 32),
            state=state or WorkerState(),
            chain=ChainWriter("worker:test", clock=lambda: AT),
            signer=KeystoreAuditSigner(pipeline_keys),
            clock=lambda: AT,
            envelope=ENVELOPE,
            pseudonym_key=b"p" * 32,
            metrics=Metrics(CollectorRegistry()),
        )
        return Processor(ctx, checkpoint_every=checkpoint_every)

    return make
