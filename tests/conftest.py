"""Fixtures shared by every test: paths, one real Apache Kafka per session, and Hypothesis's
profile.

Kafka starts at most once per test session, on free ports in a temporary directory, and only
when a test asks for it; set ACCORD_KAFKA_BOOTSTRAP to use a broker that is already running.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import settings

from tests.kafka_helpers import register

# No per-example deadline: on a shared CI machine an example is slow because the machine is
# busy, not because the code is; what a property test checks is the property.
settings.register_profile("accord", deadline=None)
settings.load_profile("accord")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """Tests make and open hundreds of keystores holding synthetic keys: unencrypted, by the
    explicit opt-out a deployment would have to write too (docs/operations.md, Keys), since
    each passphrase costs an scrypt. The tests of the default itself, and of the demo as a
    user runs it, remove it (tests/unit/keys/test_protection.py, tests/e2e/test_install.py)."""
    os.environ.setdefault("ACCORD_KEYSTORE__PROTECTION", "none")


@pytest.fixture(autouse=True)
def _reset_structlog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A command run in-process (any test directory) configures logging onto the captured
    stderr, which closes when the test ends: undo it after every test. Loggers are never
    cached meanwhile: a module's logger cached on that stream would outlive the reset, and a
    later test in the same process would write to the closed stream."""
    configure = structlog.configure

    def uncached(**kwargs: Any) -> None:
        configure(**{**kwargs, "cache_logger_on_first_use": False})

    monkeypatch.setattr(structlog, "configure", uncached)
    # `accord`'s main() quietens aiokafka's logger for the process (CRITICAL): a command run
    # in-process must not leave a later test's caplog blind to aiokafka's lines.
    aiokafka = logging.getLogger("aiokafka")
    level, propagate = aiokafka.level, aiokafka.propagate
    yield
    structlog.reset_defaults()
    aiokafka.setLevel(level)
    aiokafka.propagate = propagate


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the clone (CI always has it; a user's clone may not)."""
    if not (SHARED / "BRIEF.md").is_file():
        pytest.skip(f"../shared is not beside this clone ({SHARED}); shared examples not run")
    return SHARED


def _accord_home() -> Path:
    # The jar cache is shared across sessions so Maven fetches Kafka once per machine.
    env = os.environ.get("ACCORD_HOME")
    return Path(env) if env else Path.home() / ".cache" / "accord"


def start_kafka(tmp_path_factory: pytest.TempPathFactory, name: str, heap: str = "768m") -> Any:
    """Start a fresh broker on free ports; retried, since a free port can be taken meanwhile.
    Its JVM starts with the tests' options (tests/kafka_jvm.py): it lives for minutes."""
    from broker.devkafka import EmbeddedKafka, free_port
    from broker.errors import DevKafkaError
    from tests.kafka_jvm import quick_start_options

    options = quick_start_options(_accord_home())
    for attempt in range(3):
        node = EmbeddedKafka(
            tmp_path_factory.mktemp(name),
            home=_accord_home(),
            port=free_port(),
            controller_port=free_port(),
            heap=heap,
            jvm_options=options,
        )
        try:
            node.start()
        except DevKafkaError:
            if attempt == 2:
                raise
            continue
        register(node.client_settings())
        return node
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def embedded_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real single-node Apache Kafka this session owns (start/stop allowed)."""
    node = start_kafka(tmp_path_factory, "kafka")
    yield node
    node.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap address of a real Apache Kafka: ACCORD_KAFKA_BOOTSTRAP (reached with the
    ACCORD_KAFKA__* settings, as its admin), or the session's own."""
    if env := os.environ.get("ACCORD_KAFKA_BOOTSTRAP"):
        from broker.config import load_settings

        register(load_settings().kafka)
        return env
    node = request.getfixturevalue("embedded_kafka")
    return str(node.bootstrap)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL for the session: ACCORD_TEST_POSTGRES_URL, or a private throwaway one."""
    from tests.postgres import server_url

    yield from server_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty audit index database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    from tests.postgres import fresh_database

    yield from fresh_database(request.getfixturevalue("postgres_server"))
