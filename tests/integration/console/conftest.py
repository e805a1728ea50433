"""The audit unit fixtures (a home with the chain writers' keys), reused here."""

from tests.unit.audit.conftest import (  # noqa: F401  # re-exported pytest fixtures
    audit_home,
    keys,
    verifier,
)
