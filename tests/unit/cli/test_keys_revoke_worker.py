"""`accord keys revoke` of a worker key: refused unless --force, saying what to wait for."""

from __future__ import annotations

from pathlib import Path

from broker.envelope import KeyStatus
from broker.keys import FileKeyStore
from tests.unit.audit.conftest import Run
from tests.unit.cli.test_keys_cli import _one_line_error, bundle, home

__all__ = ["bundle", "home"]


def _worker(home: Path, bundle: Path, run_cli: Run) -> Path:
    assert run_cli(["keys", "init", "--policies", str(bundle)])[0] == 0
    return home / "keys" / "worker"


def test_revoking_the_worker_s_encryption_key_is_refused_without_force(
    home: Path, bundle: Path, run_cli: Run
) -> None:
    """Its consent table is sealed to it: revoked, every consent record is lost."""
    keys = _worker(home, bundle, run_cli)
    victim = FileKeyStore(keys).current_encryption_key("worker").key_id
    code, _, err = run_cli(["keys", "revoke", victim, "--dir", str(keys)])
    line = _one_line_error(code, err, 2)
    assert "consent records" in line
    # When --force is safe: every worker on the new key, nothing left under the old one.
    assert "or has started since" in line
    assert "accord_worker_state_entries_stale reads 0 on every worker" in line
    assert "no rebalance" in line
    assert "state_resealed" not in line  # not enough: stragglers may follow it
    assert "rollout restart" in line  # a running pod on Kubernetes never sees the new key
    assert FileKeyStore(keys).public_key(victim).status is KeyStatus.ACTIVE  # type: ignore[union-attr]

    code, out, _ = run_cli(["keys", "revoke", victim, "--dir", str(keys), "--force"])
    assert code == 0
    assert f"revoked {victim}" in out
    assert FileKeyStore(keys).public_key(victim).status is KeyStatus.REVOKED  # type: ignore[union-attr]


def test_revoking_the_worker_s_signing_key_is_refused_without_force(
    home: Path, bundle: Path, run_cli: Run
) -> None:
    """Its consent entries are signed by it: revoked, every one it signed is lost, and the
    chains it alone checkpointed read as broken; the refusal says what to wait for."""
    keys = _worker(home, bundle, run_cli)
    assert run_cli(["keys", "rotate", "worker", "--grace-days", "45", "--dir", str(keys)])[0] == 0
    old = FileKeyStore(keys).keys("worker")[0]
    assert old.purpose.value == "sign"
    code, out, err = run_cli(["keys", "revoke", old.key_id, "--dir", str(keys)])
    line = _one_line_error(code, err, 2)
    assert f"refusing to revoke the worker's signing key {old.key_id}" in line
    assert "signed by it would no longer open" in line
    assert "accord audit verify" in line
    assert "logged 'signing_key_changed', or has started since" in line
    assert "accord_worker_state_entries_stale reads 0 on every worker" in line
    assert "no rebalance" in line
    assert "--force alone revokes now (a compromise" in line
    assert "a rotated-out signing key is left to expire, not revoked" in line
    assert out == ""
    assert FileKeyStore(keys).public_key(old.key_id).status is KeyStatus.ACTIVE  # type: ignore[union-attr]


def test_revoking_the_worker_s_signing_key_with_force_warns_of_chains_it_alone_vouches_for(
    home: Path, bundle: Path, run_cli: Run
) -> None:
    keys = _worker(home, bundle, run_cli)
    assert run_cli(["keys", "rotate", "worker", "--grace-days", "45", "--dir", str(keys)])[0] == 0
    old = FileKeyStore(keys).keys("worker")[0]
    assert old.purpose.value == "sign"
    argv = ["keys", "revoke", old.key_id, "--dir", str(keys), "--force"]
    code, out, err = run_cli(argv)
    assert code == 0
    assert f"revoked {old.key_id}" in out
    assert err.startswith("warning: ")
    assert "signing_key_changed" in err
    assert "accord audit verify" in err
    assert "worker:impact-*" in err  # chains nothing checkpoints again: a known limit
    assert "deliveries it signed that a recipient group has not read yet are reported and " in err
    assert "after a routine rotation let it expire instead" in err
    assert FileKeyStore(keys).public_key(old.key_id).status is KeyStatus.REVOKED  # type: ignore[union-attr]


def test_revoking_another_party_s_signing_key_needs_no_force(
    home: Path, bundle: Path, run_cli: Run
) -> None:
    _worker(home, bundle, run_cli)
    keys = home / "keys" / "wmp"
    victim = FileKeyStore(keys).current_signing_key("wmp").info.key_id
    code, out, err = run_cli(["keys", "revoke", victim, "--dir", str(keys)])
    assert (code, err) == (0, "")
    assert f"revoked {victim}" in out
    assert FileKeyStore(keys).public_key(victim).status is KeyStatus.REVOKED  # type: ignore[union-attr]


def test_revoking_another_party_s_encryption_key_needs_no_force(
    home: Path, bundle: Path, run_cli: Run
) -> None:
    _worker(home, bundle, run_cli)
    keys = home / "keys" / "wmp"
    victim = FileKeyStore(keys).current_encryption_key("wmp").key_id
    code, out, err = run_cli(["keys", "revoke", victim, "--dir", str(keys)])
    assert (code, err) == (0, "")
    assert f"revoked {victim}" in out
