"""The audit fixtures' in-process CLI runner, reused by the CLI tests."""

from tests.unit.audit.conftest import run_cli  # noqa: F401  # a re-exported pytest fixture
