"""The policy bundle as ``accord keys init`` reads it: its parties and their kinds."""

from __future__ import annotations

from pathlib import Path

from broker.errors import UsageError


def policy_parties(policies: Path) -> list[str]:
    """Party ids of a policy bundle: the keys of ``parties:`` in ``parties.yaml``."""
    import yaml

    from broker.envelope import is_identifier
    from broker.keys import SPECIAL_PRINCIPALS

    if not policies.is_dir():
        raise UsageError(f"policy bundle not found: {policies} (use --policies DIR)")
    path = policies / "parties.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: missing (a policy bundle needs parties.yaml)") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML") from exc
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    parties = data.get("parties") if isinstance(data, dict) else None
    if not isinstance(parties, dict) or not parties:
        raise UsageError(f"{path}: expected a non-empty 'parties:' mapping")
    ids = [str(p) for p in parties]
    for pid in ids:
        if not is_identifier(pid):
            raise UsageError(f"{path}: party id {pid!r} must use letters, digits and . _ : -")
        if pid in SPECIAL_PRINCIPALS:
            raise UsageError(f"{path}: party id {pid!r} is reserved for Accord itself")
    return ids


def party_kinds(policies: Path) -> dict[str, str] | None:
    """Each party's ``kind`` as the bundle's ``parties.yaml`` says it; None when the bundle
    cannot be read here (none, not UTF-8 or not YAML, or an SDK-only install, which cannot
    read YAML): the caller then assumes nothing about a party, and says why."""
    try:
        import yaml
    except ImportError:
        return None
    try:
        data = yaml.safe_load((policies / "parties.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    parties = data.get("parties") if isinstance(data, dict) else None
    if not isinstance(parties, dict):
        return {}
    return {
        str(pid): str(party["kind"])
        for pid, party in parties.items()
        if isinstance(party, dict) and isinstance(party.get("kind"), str)
    }
