"""``accord keys``: create, protect, list, rotate, retire and revoke parties' keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from broker.cli._keys_exchange import register_exchange
from broker.config import KemSuite
from broker.errors import KeyStoreError, UsageError

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.envelope import KeyInfo
    from broker.keys import FileKeyStore

_DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Keystore directory (default: <ACCORD_HOME>/keys).", show_default=False
    ),
]


def _open_store(directory: Path | None, principal: str | None = None) -> FileKeyStore:
    """``--dir``; else ``principal``'s keystore; else the governance keystore, which holds the
    master directory (with one keystore for everything, that keystore)."""
    from broker.config import load_settings
    from broker.keys import FileKeyStore

    settings = load_settings()
    if directory is not None:
        path = directory
    else:
        path = settings.keystore_path(principal or "governance")
        root = settings.keys_dir
        if path == root and not (root / "keystore.json").exists() and (root / "worker").is_dir():
            raise UsageError(f"no keystore for {principal} in {root} (one per party)")
    return FileKeyStore(path, settings.keystore_passphrase())


def _policy_parties(policies: Path) -> list[str]:
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


def _status(info: KeyInfo) -> str:
    import time

    if info.status.value == "active" and not info.is_live_ts(time.time()):
        return "expired"
    return info.status.value


def _row(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "party": info.party,
        "purpose": info.purpose.value,
        "alg": info.alg.value,
        "status": _status(info),
        "created_at": info.created_at.isoformat(timespec="seconds"),
        "not_after": info.not_after.isoformat(timespec="seconds") if info.not_after else None,
    }


def _print_table(infos: list[KeyInfo]) -> None:
    rows = [_row(i) for i in infos]
    cols = ("party", "purpose", "alg", "key_id", "status", "not_after")
    widths = {c: max([len(c), *(len(str(r[c] or "-")) for r in rows)]) for c in cols}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        typer.echo("  ".join(str(r[c] or "-").ljust(widths[c]) for c in cols).rstrip())


def _enrolment_secrets(store: FileKeyStore, party: str, settings: Settings) -> None:
    """Make the secrets of the console's (or ``party``'s desk's) web app that the store lacks:
    the key that seals its accounts' second factors, the device-cookie key and, for a desk,
    its linkage secret (a party new to the store has its own already: ``_init`` makes it
    before the party's keys), moving in the plain files an older Accord kept. Made here,
    with the store, because no server makes them: a keystore archived for Kubernetes is
    unpacked into memory at each start, and a secret made there would be lost at the next,
    and every officer's code with it."""
    from broker.desk import desk_linkage_key
    from broker.principals import Principal
    from broker.webauth import TotpBox, device_key

    console = party == Principal.CONSOLE
    owner = "console" if console else f"desk:{party}"
    TotpBox.from_keystore(store, owner, create=True)
    # An older app's plain device-cookie file is this home's, beside its accounts: it moves
    # only into the keystore this home's servers use. One made with --dir (for another host,
    # at a key ceremony, say) gets a key of its own, not this home's, nor deletes its file.
    users: Path | None = None
    if store.path.resolve() == settings.keystore_path(party).resolve():
        users = settings.console_users_file if console else settings.desk_users_file(party)
    device_key(store, owner, users, move=True)
    if not console:
        try:
            desk_linkage_key(store, party=party, move=True)
        except KeyStoreError as exc:
            # The keystore's older shared secret is in question (two copies that differ, a
            # file readable by others). Only a desk reads it, and the desk and its flag
            # service refuse to start on it with the same words; keys init, which an agency
            # runs too, goes on with the party's keys.
            typer.echo(f"warning: {party}'s desk linkage secret was not made: {exc}", err=True)


def _init(
    policies: Path | None, party: str | None, directory: Path | None, kem: KemSuite | None
) -> None:
    from broker.config import load_settings
    from broker.envelope import is_identifier
    from broker.keys import ALL_PURPOSES, SPECIAL_PRINCIPALS, FileKeyStore, init_keystores
    from broker.principals import Principal

    settings = load_settings()
    suite = kem if kem is not None else settings.envelope.kem
    if party is not None:
        if policies is not None:
            raise UsageError("give --party (one party's own keys) or --policies, not both")
        if not is_identifier(party):  # before anything is made: no empty keystore left
            raise UsageError("party ids use letters, digits and . _ : - only (1-255 characters)")
        path = directory if directory is not None else settings.keystore_path(party)
        store = FileKeyStore(path, settings.keystore_passphrase(), create=True)
        purposes = SPECIAL_PRINCIPALS.get(party, ALL_PURPOSES)
        new_party = party not in store.private_parties()
        if new_party and party not in SPECIAL_PRINCIPALS:
            # Its own linkage secret before its keys: were this run to fail after the keys,
            # the next would take the party for an old one, and give it the shared secret.
            from broker.desk import desk_linkage_key

            desk_linkage_key(store, party=party, create=True, new_party=True)
        created = store.ensure_party(party, purposes=purposes, kem=suite)
        if party == Principal.CONSOLE or party not in SPECIAL_PRINCIPALS:
            _enrolment_secrets(store, party, settings)
        typer.echo(f"keystore {store.path}: {len(created)} new keys for {party}")
        if created:
            _print_table(created)
        _warn_unprotected(store.protected)
        return
    parties = _policy_parties(policies if policies is not None else settings.policies)
    root = directory if directory is not None else settings.keys_dir
    anchor = init_keystores(root, parties, passphrase=settings.keystore_passphrase(), kem=suite)
    for owner in [*parties, str(Principal.CONSOLE)]:
        store = FileKeyStore(root / owner, settings.keystore_passphrase())
        _enrolment_secrets(store, owner, settings)
    total = len(parties) + len(SPECIAL_PRINCIPALS)
    typer.echo(
        f"{total} keystores in {root}, one per party and service, each with only its own "
        f"private keys; directory {root / 'directory.json'} signed by governance key {anchor}"
    )
    _warn_unprotected(settings.keystore_passphrase() is not None)


def _protect(directory: Path | None) -> None:
    from broker.config import load_settings
    from broker.keys import protect_keystores

    settings = load_settings()
    passphrase = settings.keystore.passphrase
    if passphrase is None:
        raise UsageError(
            "set ACCORD_KEYSTORE__PASSPHRASE (or ACCORD_KEYSTORE__PASSPHRASE_FILE) to the "
            "passphrase to protect the keystore with"
        )
    root = directory if directory is not None else settings.keys_dir
    done = protect_keystores(root, passphrase)
    for path in done:
        typer.echo(f"keystore {path}: private keys now encrypted under the passphrase")
    if not done:
        typer.echo(f"every keystore at {root} is protected already (and opens with the passphrase)")


def _warn_unprotected(protected: bool) -> None:
    # Allowed, for the demo and tests on synthetic data, but never silently.
    from broker.keys import UNPROTECTED_WARNING

    if not protected:
        typer.echo(f"warning: {UNPROTECTED_WARNING}", err=True)


def register(app: typer.Typer) -> None:
    keys_app = typer.Typer(
        name="keys",
        help="Manage parties' signing and encryption keys (the local keystore).",
        no_args_is_help=True,
    )

    @keys_app.command("init")
    def init(
        party: Annotated[
            str | None, typer.Option("--party", help="Make this party's keys only.")
        ] = None,
        policies: Annotated[
            Path | None,
            typer.Option("--policies", help="Make a keystore for every party of this bundle."),
        ] = None,
        directory: _DirOption = None,
        kem: Annotated[
            KemSuite | None, typer.Option("--kem", help="KEM for new encryption keys.")
        ] = None,
    ) -> None:
        """Make one party's keys in its own keystore (--party); or, for a demo or a test, a
        keystore per party and service of a bundle under --dir, wired with a signed directory.

        Idempotent: parties that already have active keys keep them.
        """
        _init(policies, party, directory, kem)

    @keys_app.command("protect")
    def protect(directory: _DirOption = None) -> None:
        """Encrypt a keystore made unencrypted (ACCORD_KEYSTORE__PROTECTION=none) under
        ACCORD_KEYSTORE__PASSPHRASE: the one at --dir, or each one under it.

        Stop the services that use it first. The unencrypted files are deleted, not wiped:
        if the keys ever guarded real data, rotate them afterwards.
        """
        _protect(directory)

    @keys_app.command("list")
    def list_keys(
        directory: _DirOption = None,
        party: Annotated[str | None, typer.Option("--party", help="Only this party.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    ) -> None:
        """List the public key directory: ids, purposes, algorithms and status."""
        infos = _open_store(directory, party).keys(party)
        if party is not None and not infos:
            raise UsageError(f"no keys for party {party}")
        if as_json:
            for info in infos:
                typer.echo(json.dumps(_row(info), sort_keys=True))
        else:
            _print_table(infos)

    @keys_app.command("rotate")
    def rotate(
        party: Annotated[str, typer.Argument(help="Party whose keys to rotate.")],
        directory: _DirOption = None,
        purpose: Annotated[str, typer.Option("--purpose", help="sign, encrypt or both.")] = "both",
        grace_days: Annotated[
            float,
            typer.Option(
                "--grace-days", min=0, max=3650, help="Old keys keep opening for this long."
            ),
        ] = 7.0,
    ) -> None:
        """New keys seal and sign from now on; the old ones expire after the grace period."""
        from datetime import timedelta

        from broker.config import load_settings
        from broker.envelope import KeyPurpose
        from broker.keys import ALL_PURPOSES

        choice = {"both": ALL_PURPOSES, "sign": (KeyPurpose.SIGN,)}
        choice["encrypt"] = (KeyPurpose.ENCRYPT,)
        if purpose not in choice:
            raise UsageError("--purpose must be sign, encrypt or both")
        store = _open_store(directory, party)
        created = store.rotate(
            party,
            purposes=choice[purpose],
            kem=load_settings().envelope.kem,
            grace=timedelta(days=grace_days),
        )
        if not created:
            raise UsageError(f"party {party} has no {purpose} key to rotate")
        typer.echo(f"rotated {party}: old keys expire in {grace_days:g} days")
        _print_table(created)

    @keys_app.command("retire")
    def retire(
        key_id: Annotated[str, typer.Argument(help="Key id (see 'accord keys list').")],
        directory: _DirOption = None,
    ) -> None:
        """Stop using a key: records under it no longer open."""
        info = _open_store(directory).retire(key_id)
        typer.echo(f"retired {info.key_id} ({info.party}, {info.purpose.value})")

    @keys_app.command("revoke")
    def revoke(
        key_id: Annotated[str, typer.Argument(help="Key id (see 'accord keys list').")],
        directory: _DirOption = None,
    ) -> None:
        """Revoke a compromised key: refused at once for signing, sealing and opening."""
        info = _open_store(directory).revoke(key_id)
        typer.echo(f"revoked {info.key_id} ({info.party}, {info.purpose.value})")

    register_exchange(keys_app)
    app.add_typer(keys_app, name="keys")
