"""``accord keys rotate|retire|revoke``: a party's keys replaced, or one key taken out of use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli._keys_store import DirOption, open_store, print_table
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.envelope import KeyInfo
    from broker.keys import FileKeyStore

__all__ = ["register_changes"]

#: The least grace for the worker's signing key: a delivery topic keeps a record up to ~37
#: days (30 days' retention, weekly segments), and the old key signs until the staged
#: rotation's last step, days after it began.
_WORKER_GRACE_DAYS = 45


def _worker_key_revoked(info: KeyInfo, force: bool) -> None:
    """Revoking a worker key costs more than its records in flight: refuse without --force,
    and with it say what it costs the audit chains."""
    from broker.envelope import KeyPurpose
    from broker.principals import Principal

    if info.party != Principal.WORKER:
        return
    # The worker's consent table, in the changelog, is sealed to its encryption key and
    # signed by its signing key: an entry is refused once either is revoked.
    signing = info.purpose is KeyPurpose.SIGN
    kind, how, changed = (
        ("signing", "signed by", "signing_key_changed")
        if signing
        else ("encryption", "sealed to", "encryption_key_changed")
    )
    if not force:
        chains = (
            ", and a chain whose latest checkpoint only it signed is reported broken by "
            "'accord audit verify' until checkpointed again"
            if signing
            else ""
        )
        read = (
            "; a rotated-out signing key is left to expire, not revoked: revoked, what it "
            "signed that a recipient group has not read yet is skipped, lost"
            if signing
            else ""
        )
        raise UsageError(
            f"refusing to revoke the worker's {kind} key {info.key_id}: consent records "
            f"in the worker's state {how} it would no longer open (consent-required "
            f"shares stop, and a lost withdrawal fails open){chains}; after a rotation, "
            "revoke with --force only once every worker has changed key "
            f"(logged '{changed}', or has started since; on Kubernetes only a restarted pod "
            "reads the new keystore: 'kubectl -n accord rollout restart "
            "deployment/accord-worker'), accord_worker_state_entries_stale reads 0 on every "
            "worker a minute or more after the last one changed, and no rebalance is under "
            f"way{read} (docs/operations.md, 'Keys'); --force alone revokes now (a "
            "compromise: the consent authorities then file those consents again)"
        )
    if signing:
        typer.echo(
            "warning: a chain whose latest checkpoint this key signed is reported broken by "
            "'accord audit verify' until the worker checkpoints it under its new key (it does "
            "at start, and when it picks up a new key: log 'signing_key_changed'); chains "
            "nothing writes to again (policy impact runs' worker:impact-*, a deleted agency's) "
            "stay reported as awaiting a checkpoint; and deliveries it signed that a "
            "recipient group has not read yet are reported and skipped by readers, lost (a "
            "revoked key's signature is anybody's): after a routine rotation let it expire "
            "instead (docs/operations.md, 'Revoking the worker's old keys')",
            err=True,
        )


def _change_status(directory: Path | None, key_id: str, verb: str, force: bool = False) -> None:
    """``keys retire|revoke``: refused for another party's key in a keystore that is neither
    its owner's nor the governance one. The directory is authoritative for everyone else's
    keys, so the next one imported would undo the change there, silently."""
    from broker.principals import Principal

    store = open_store(directory)
    info = store.public_key(key_id)
    held = store.holds_private(key_id)
    # In the governance keystore, the master copy: the next signed directory carries it.
    if info is not None and not held and Principal.GOVERNANCE not in store.private_parties():
        raise UsageError(
            f"key {key_id} is {info.party}'s, and this keystore ({store.path}) is neither "
            f"{info.party}'s nor the governance one: the next directory imported here would undo "
            f"it; {verb} it in {info.party}'s own keystore, or the IG officer does in the "
            "governance keystore (--dir), and the next signed directory carries it to everyone"
        )
    if verb == "revoke" and info is not None:
        _worker_key_revoked(info, force)
    info = store.retire(key_id) if verb == "retire" else store.revoke(key_id)
    # The folder is named: without --dir this is the governance keystore, whoever owns the key.
    where = f"keystore {store.path}"
    if info.party != Principal.GOVERNANCE and Principal.GOVERNANCE in store.private_parties():
        where += " (the governance keystore: the next signed directory carries it)"
    typer.echo(f"{verb}d {info.key_id} ({info.party}, {info.purpose.value}) in {where}")


def _governance_rotated(store: FileKeyStore, grace_days: float) -> None:
    """What a governance rotation means: ``sign-directory`` goes on signing with the old key
    (the one every keystore trusts) until it expires, so the next directory introduces the
    new one; a keystore that imports none within the grace must be given the new key's id
    (schemas/key-directory.md §4)."""
    from broker.keys import directory_signer

    signer = directory_signer(store)
    now = f"governance key {signer.key_id}" if signer is not None else "the old governance key"
    typer.echo(
        f"{now} goes on signing directories for {grace_days:g} days, and the next one it "
        "signs introduces the new key: sign and send one now (accord keys sign-directory), "
        "and every keystore imports it within the grace; one that misses it imports the "
        "next with --trust NEW_KEY_ID, checked out of band"
    )


def _old_keys(store: FileKeyStore, created: list[KeyInfo]) -> str:
    """The rotated-out keys as they are: on their grace, or out of use already (revoked or
    retired, the stolen keystore's case: a rotation gives those no grace)."""
    from datetime import UTC, datetime

    from broker.envelope import KeyStatus

    purposes = {k.purpose for k in created}
    new = {k.key_id for k in created}
    old = [
        k for k in store.keys(created[0].party)
        if k.purpose in purposes and k.key_id not in new
    ]  # fmt: skip
    now = datetime.now(UTC)
    said = []
    for k in sorted(old, key=lambda k: (k.purpose.value, k.created_at)):
        if k.status is not KeyStatus.ACTIVE:
            said.append(f"old {k.purpose.value} key {k.key_id} is {k.status.value} already")
        elif k.not_after is not None and k.not_after <= now:
            said.append(f"old {k.purpose.value} key {k.key_id} has expired")
        else:
            when = "no expiry" if k.not_after is None else k.not_after.strftime("%Y-%m-%d %H:%M")
            said.append(f"old {k.purpose.value} key {k.key_id} expires {when} UTC")
    return "; ".join(said) or "no old key"


def _who_signs(store: FileKeyStore, party: str, created: list[KeyInfo]) -> None:
    """Which key signs now, from the store's own choice (``signing_key``): the old one
    until a directory naming the new one is imported here, unless no old one the last
    directory lists is live any more (revoked, retired, expired), when the new one signs at
    once, before anyone else can verify it."""
    from broker.envelope import KeyPurpose
    from broker.principals import Principal

    signer = store.signing_key(party)
    if signer.key_id not in {k.key_id for k in created}:
        typer.echo(
            f"old signing key {signer.key_id} goes on signing until the signed directory "
            f"naming the new keys is imported here (accord keys export --party {party})"
        )
        return
    new_sign = next(k for k in created if k.purpose is KeyPurpose.SIGN)
    if store.listed_by_directory() is None:
        typer.echo(
            f"no signed directory imported here yet: new signing key {new_sign.key_id} signs now"
        )
        return
    typer.echo(f"new signing key {new_sign.key_id} signs now: no old signing key is live")
    if party in (Principal.WORKER, Principal.CONSOLE):
        what = (
            "what it signs verifies in no keystore until that keystore imports the signed "
            "directory naming it"
        )
    else:
        # The worker verifies a party's events against its own copy of the directory.
        what = (
            f"anything {party} publishes before the worker imports the signed directory "
            "naming it is quarantined key-rejected (send it again after that import)"
        )
    typer.echo(
        f"warning: {what}; export the new keys now (accord keys export --party {party}): "
        f"no signing key the directory lists signs them, so the IG officer takes them only "
        f"with --unsigned {party}, after checking their key ids with you out of band",
        err=True,
    )


def register_changes(keys_app: typer.Typer) -> None:
    @keys_app.command("rotate")
    def rotate(
        party: Annotated[str, typer.Argument(help="Party whose keys to rotate.")],
        directory: DirOption = None,
        purpose: Annotated[str, typer.Option("--purpose", help="sign, encrypt or both.")] = "both",
        grace_days: Annotated[
            float,
            typer.Option(
                "--grace-days", min=0, max=3650, help="Old keys keep opening for this long."
            ),
        ] = 7.0,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help=f"Rotate the worker's signing key with a grace below {_WORKER_GRACE_DAYS} "
                "days all the same.",
            ),
        ] = False,
    ) -> None:
        """Make new keys; the old ones keep opening (and signing) until they expire after the
        grace period. Export the new ones for the governance officer: others seal to the new
        encryption key once they import the signed directory naming it, and the new signing
        key signs once this keystore imports it, unless no old signing key is live (revoked,
        retired or expired: a revoked key gets no grace): then it signs at once, and the
        worker refuses it (key-rejected) until it imports that directory. Governance is the
        exception: sign-directory signs with the old key until it expires, introducing the
        new one to every keystore that imports a directory within the grace."""
        from datetime import timedelta

        from broker.config import load_settings
        from broker.envelope import KeyPurpose
        from broker.keys import ALL_PURPOSES

        choice = {"both": ALL_PURPOSES, "sign": (KeyPurpose.SIGN,)}
        choice["encrypt"] = (KeyPurpose.ENCRYPT,)
        if purpose not in choice:
            raise UsageError("--purpose must be sign, encrypt or both")
        short = party == "worker" and purpose != "encrypt" and grace_days < _WORKER_GRACE_DAYS
        if short and not force:
            # Refused, not warned after the fact: nothing extends a key's grace once it is
            # rotated out, and rotating again gives the longer one only to the newer key.
            raise UsageError(
                f"refusing to rotate the worker's signing key with {grace_days:g} days' grace: "
                "deliveries it signed that a reader reads after it expires never open; give "
                f"--grace-days {_WORKER_GRACE_DAYS} or more (delivery retention + a week + the "
                "staging), or --force"
            )
        store = open_store(directory, party)
        created = store.rotate(
            party,
            purposes=choice[purpose],
            kem=load_settings().envelope.kem,
            grace=timedelta(days=grace_days),
        )
        if not created:
            raise UsageError(f"party {party} has no {purpose} key to rotate")
        typer.echo(f"rotated {party} in keystore {store.path}: {_old_keys(store, created)}")
        if short:
            # Its old signing key signs until step 4 and must outlive every delivery it
            # signed that a reader may still read (docs/operations.md, "Keys").
            typer.echo(
                f"warning: the worker's old signing key expires in {grace_days:g} days, and "
                "nothing extends that later; deliveries it signed that a reader reads after "
                "it expires never open: make sure every recipient group has read past them "
                "by then (docs/operations.md, 'Revoking the worker's old keys')",
                err=True,
            )
        if party == "governance" and purpose != "encrypt":
            _governance_rotated(store, grace_days)
        elif purpose != "encrypt":
            _who_signs(store, party, created)
        else:
            typer.echo(
                "others seal to the new encryption key once they import the signed directory "
                f"naming it (accord keys export --party {party})"
            )
        print_table(created, store)

    @keys_app.command("retire")
    def retire(
        key_id: Annotated[str, typer.Argument(help="Key id (see 'accord keys list').")],
        directory: DirOption = None,
    ) -> None:
        """Stop using a key: records under it no longer open."""
        _change_status(directory, key_id, "retire")

    @keys_app.command("revoke")
    def revoke(
        key_id: Annotated[str, typer.Argument(help="Key id (see 'accord keys list').")],
        directory: DirOption = None,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help=(
                    "Revoke a worker key even if its consent state may still be sealed to "
                    "or signed by it."
                ),
            ),
        ] = False,
    ) -> None:
        """Revoke a compromised key: refused at once for signing, sealing and opening.

        In the owner's keystore, or in the IG officer's governance keystore (a compromised or
        unreachable organisation's key); the next signed directory carries it to everyone.
        A worker key (encryption or signing) only with --force: see docs/operations.md,
        "Keys"."""
        _change_status(directory, key_id, "revoke", force)
