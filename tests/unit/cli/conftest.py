"""The audit fixtures' in-process CLI runner, reused by the CLI tests."""

from collections.abc import Iterator

import pytest
import structlog

from tests.unit.audit.conftest import run_cli  # noqa: F401  # a re-exported pytest fixture


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """A command run in-process configures logging onto the captured stderr: undo it after."""
    yield
    structlog.reset_defaults()
