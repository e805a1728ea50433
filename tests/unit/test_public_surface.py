"""Pinned public surfaces (httpx-style): a name leaves or joins only on purpose."""

from __future__ import annotations

import importlib

import pytest

SURFACES = {
    "broker.sdk": {
        "AccessAck", "Delivery", "Publisher", "Receipt", "SharedRecord", "Subscriber",
        "Unopenable", "WithdrawalNotice",
    },
    "broker.pipeline": {
        "GOVERNANCE", "ConsentShare", "Context", "Linker", "Metrics", "OutRecord", "Processor",
        "Stage", "StateEntry", "Step", "TopicSpec", "TransactionalLoop", "Verdict", "Work",
        "Worker", "WorkerOptions", "WorkerState", "accord_topics", "ensure_topics",
        "load_linkage_key", "prepare_topics", "restore_state", "run_chain", "serve",
    },
    "broker.devkafka": {
        "KAFKA_VERSION", "BrokerStatus", "EmbeddedKafka", "ensure_kafka_jars", "free_port",
        "pom_path",
    },
    "broker.cli": {"build_app", "main"},
    "broker.console": {
        "Account", "Chart", "ConsoleDeps", "ConsoleRun", "IndexWait", "LookupPurpose", "Session",
        "SessionStore", "SignInThrottle", "UserFile", "console_chain", "counts_chart",
        "create_app", "decisions_chart", "load_console_policy", "record_query", "run_console",
    },
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(SURFACES))
def test_public_names_are_exactly_the_pinned_ones(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == SURFACES[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name
