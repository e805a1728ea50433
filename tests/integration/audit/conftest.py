"""The audit unit fixtures (keys, linkage, stores on SQLite and PostgreSQL), reused here."""

from tests.unit.audit.conftest import (  # noqa: F401  # re-exported pytest fixtures
    audit_home,
    keys,
    linker,
    run_cli,
    store,
    verifier,
)
