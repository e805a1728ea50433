"""``accord keys``: create, protect, list, rotate, retire and revoke parties' keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from broker.cli._keys_bundle import party_kinds, policy_parties
from broker.cli._keys_exchange import given_dir, register_exchange
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


#: The least grace for the worker's signing key: a delivery topic keeps a record up to ~37
#: days (30 days' retention, weekly segments), and the old key signs until the staged
#: rotation's last step, days after it began.
_WORKER_GRACE_DAYS = 45


def _open_store(directory: Path | None, principal: str | None = None) -> FileKeyStore:
    """``--dir``; else ``principal``'s keystore; else the governance keystore, which holds the
    master directory (with one keystore for everything, that keystore)."""
    from broker.config import load_settings
    from broker.keys import FileKeyStore

    settings = load_settings()
    if directory is not None:
        path = given_dir(directory)
    else:
        path = settings.keystore_path(principal or "governance")
        root = settings.keys_dir
        if path == root and not (root / "keystore.json").exists() and (root / "worker").is_dir():
            raise UsageError(f"no keystore for {principal} in {root} (one per party)")
    return FileKeyStore(path, settings.keystore_passphrase())


def _status(info: KeyInfo) -> str:
    import time

    if info.status.value == "active" and not info.is_live_ts(time.time()):
        return "expired"
    return info.status.value


def _signing(store: FileKeyStore) -> set[str]:
    """The ids of the keys this store's own parties sign with now (``FileKeyStore.signing_key``:
    after a rotation, the old key until a directory naming the new one is imported). For
    governance, the key ``sign-directory`` signs with: the oldest live one, which during a
    rotation's grace is the old key, introducing the new one."""
    import contextlib

    from broker.errors import KeyNotFound
    from broker.keys import directory_signer
    from broker.principals import Principal

    ids = set()
    for party in store.private_parties():
        if party == Principal.GOVERNANCE:
            if (signer := directory_signer(store)) is not None:
                ids.add(signer.key_id)
            continue
        with contextlib.suppress(KeyNotFound):  # a party with no active signing key
            ids.add(store.signing_key(party).key_id)
    return ids


def _row(info: KeyInfo, signing: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "party": info.party,
        "purpose": info.purpose.value,
        "alg": info.alg.value,
        "status": _status(info),
        "in_use": "signing" if info.key_id in signing else None,
        "created_at": info.created_at.isoformat(timespec="seconds"),
        "not_after": info.not_after.isoformat(timespec="seconds") if info.not_after else None,
    }


def _print_table(infos: list[KeyInfo], store: FileKeyStore) -> None:
    signing = _signing(store)
    rows = [_row(i, signing) for i in infos]
    cols = ("party", "purpose", "alg", "key_id", "status", "in_use", "not_after")
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
    and every officer's code with it. Only ``broker.keys`` is needed, so an SDK-only install
    enrols too."""
    from broker.keys import TOTP_SECRET_NAME, desk_linkage_key, device_key
    from broker.principals import Principal

    console = party == Principal.CONSOLE
    owner = "console" if console else f"desk:{party}"
    store.local_secret(TOTP_SECRET_NAME)  # what ``TotpBox.from_keystore(create=True)`` makes
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


def _has_web_app(party: str, kinds: dict[str, str]) -> bool:
    """Whether ``party`` has a web app whose secrets enrolment makes: the console, and every
    party but one the bundle names an agency (an agency runs no desk). A party the bundle does
    not know, or with no bundle to read, is given them, as it may run a desk."""
    from broker.keys import SPECIAL_PRINCIPALS
    from broker.principals import Principal

    if party in SPECIAL_PRINCIPALS:
        return party == Principal.CONSOLE
    return kinds.get(party) != "agency"


def _init(
    policies: Path | None, party: str | None, directory: Path | None, kem: KemSuite | None
) -> None:
    from broker.config import load_settings

    settings = load_settings()
    suite = kem if kem is not None else settings.envelope.kem
    if party is not None:
        _init_party(settings, party, policies, directory, suite)
        return
    from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore, init_keystores, keystores_under
    from broker.principals import Principal

    bundle = policies if policies is not None else settings.policies
    parties = policy_parties(bundle)
    kinds = party_kinds(bundle)
    root = directory if directory is not None else settings.keys_dir
    present = keystores_under(root) if root.is_dir() else []
    if present:
        # Every party's keys in one home is the demo's convenience. Beside keystores made
        # one by one (a host serving other organisations), it would make their keys here,
        # under this host's passphrase, and stop at the first store with a passphrase of
        # its own.
        names = ", ".join(p.name if p != root.resolve() else str(root) for p in present)
        raise UsageError(
            f"{root} holds keystores already ({names}): 'keys init' without --party makes "
            "every party's keys in one folder, for a demo or a test. Make one principal's "
            f"alone with 'accord keys init --party PRINCIPAL --dir {root / 'PRINCIPAL'}' (a "
            "lost one: restore it from its backup), or give --dir a new folder"
        )
    existed = root.exists()
    before = set(root.iterdir()) if existed else set()
    try:
        anchor = init_keystores(root, parties, passphrase=settings.keystore_passphrase(), kem=suite)
        for owner in [*parties, str(Principal.CONSOLE)]:
            if _has_web_app(owner, kinds):
                store = FileKeyStore(root / owner, settings.keystore_passphrase())
                _enrolment_secrets(store, owner, settings)
    except BaseException:
        _unmake(root, existed, before)  # no store was there: every one is this run's
        raise
    total = len(parties) + len(SPECIAL_PRINCIPALS)
    typer.echo(
        f"{total} keystores in {root}, one per party and service, each with only its own "
        f"private keys; directory {root / 'directory.json'} signed by governance key {anchor}"
    )
    _warn_unprotected(settings.keystore_passphrase() is not None)


def _init_party(
    settings: Settings, party: str, policies: Path | None, directory: Path | None, suite: KemSuite
) -> None:
    """``keys init --party``: the party's keys in its own keystore, and its web app's secrets
    unless ``policies`` (else the configured bundle, where there is one) names it an agency."""
    from broker.envelope import is_identifier
    from broker.keys import ALL_PURPOSES, SPECIAL_PRINCIPALS, FileKeyStore

    if not is_identifier(party):  # before anything is made: no empty keystore left
        raise UsageError("party ids use letters, digits and . _ : - only (1-255 characters)")
    if policies is not None and not (policies / "parties.yaml").is_file():
        raise UsageError(f"{policies / 'parties.yaml'}: missing (a policy bundle needs it)")
    if policies is not None and party not in SPECIAL_PRINCIPALS:
        known = policy_parties(policies)
        if party not in known:  # a typo would make keys no directory is meant to list
            import difflib

            near = difflib.get_close_matches(party, known, n=1)
            hint = f": did you mean {near[0]}?" if near else ""
            raise UsageError(f"--party: {party} is no party of the bundle {policies}{hint}")
    bundle = policies if policies is not None else settings.policies_at_hand()
    kinds = {} if bundle is None else party_kinds(bundle)
    path = directory if directory is not None else settings.keystore_path(party)
    existed, new = path.exists(), not (path / "keystore.json").exists()
    made_before = set(path.iterdir()) if existed and path.is_dir() else set()
    try:
        store = FileKeyStore(path, settings.keystore_passphrase(), create=True)
        purposes = SPECIAL_PRINCIPALS.get(party, ALL_PURPOSES)
        web = _has_web_app(party, kinds)
        new_party = party not in store.private_parties()
        if web and new_party and party not in SPECIAL_PRINCIPALS:
            # Its own linkage secret before its keys: were this run to fail after the keys,
            # the next would take the party for an old one, and give it the shared secret.
            from broker.keys import desk_linkage_key

            desk_linkage_key(store, party=party, create=True, new_party=True)
        created = store.ensure_party(party, purposes=purposes, kem=suite)
        if web:
            _enrolment_secrets(store, party, settings)
    except BaseException:
        if new:
            _unmake(path, existed, made_before)
        raise
    typer.echo(f"keystore {store.path}: {len(created)} new keys for {party}")
    if created:
        _print_table(created, store)
    _warn_unprotected(store.protected)


def _unmake(path: Path, existed: bool, before: set[Path]) -> None:
    """Remove what a failed first ``keys init`` made of a keystore (or, without ``--party``,
    of a keys folder): a half-made one would be taken for a whole one by the next command
    (an empty ``private/``, no keys)."""
    import shutil

    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for item in set(path.iterdir()) - before:
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


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


def _worker_key_revoked(info: KeyInfo, force: bool) -> None:
    """Revoking a worker key costs more than its records in flight: say what, or refuse."""
    from broker.envelope import KeyPurpose
    from broker.principals import Principal

    if info.party != Principal.WORKER:
        return
    if info.purpose is KeyPurpose.ENCRYPT and not force:
        # The worker's consent table is sealed to its own key, once, in the changelog.
        raise UsageError(
            f"refusing to revoke the worker's encryption key {info.key_id}: consent records "
            "in the worker's state sealed to it would no longer open (consent-required "
            "shares stop); after a rotation, start the worker with its new key first (the "
            "one holding consent partition 0 seals them again and logs 'state_resealed' once "
            "committed), then revoke with --force; --force alone revokes now (a compromise: "
            "the consent authorities then file those consents again)"
        )
    if info.purpose is KeyPurpose.SIGN:
        typer.echo(
            "warning: a chain whose latest checkpoint this key signed is reported broken by "
            "'accord audit verify' until the worker checkpoints it under its new key (it does "
            "at start, and when it picks up a new key: log 'signing_key_changed'); chains "
            "nothing writes to again (policy impact runs' worker:impact-*, a deleted agency's) "
            "stay reported as awaiting a checkpoint (docs/operations.md, 'Keys')",
            err=True,
        )


def _change_status(directory: Path | None, key_id: str, verb: str, force: bool = False) -> None:
    """``keys retire|revoke``: refused for another party's key in a keystore that is neither
    its owner's nor the governance one. The directory is authoritative for everyone else's
    keys, so the next one imported would undo the change there, silently."""
    from broker.principals import Principal

    store = _open_store(directory)
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
            typer.Option(
                "--policies",
                help="Make a keystore for every party of this bundle; with --party, the "
                "bundle that names the party and says whether it is an agency (no desk secrets).",
            ),
        ] = None,
        directory: _DirOption = None,
        kem: Annotated[
            KemSuite | None, typer.Option("--kem", help="KEM for new encryption keys.")
        ] = None,
    ) -> None:
        """Make one party's keys in its own keystore (--party); or, for a demo or a test, a
        keystore per party and service of a bundle under --dir, wired with a signed directory.

        A party's desk and web secrets are made with its keys, unless the bundle (--policies,
        else the configured one) names it an agency. With --party, idempotent: a party that
        has active keys keeps them. Without, only into a folder that holds no keystore yet.
        A first run that fails leaves no keystore behind.
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
        """List the public key directory: ids, purposes, algorithms and status; IN_USE marks
        the signing key each of the keystore's own parties signs with now (for governance,
        the one sign-directory signs with)."""
        store = _open_store(directory, party)
        infos = store.keys(party)
        if party is not None and not infos:
            raise UsageError(f"no keys for party {party}")
        if as_json:
            signing = _signing(store)
            for info in infos:
                typer.echo(json.dumps(_row(info, signing), sort_keys=True))
        else:
            _print_table(infos, store)

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
        """Make new keys; the old ones keep opening (and signing) until they expire after the
        grace period. Export the new ones for the governance officer: others seal to the new
        encryption key once they import the signed directory naming it, and the new signing
        key signs once this keystore imports it. Governance is the exception: sign-directory
        signs with the old key until it expires, introducing the new one to every keystore
        that imports a directory within the grace."""
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
        typer.echo(
            f"rotated {party} in keystore {store.path}: old keys expire in {grace_days:g} days"
        )
        if party == "worker" and purpose != "encrypt" and grace_days < _WORKER_GRACE_DAYS:
            # Its old signing key signs until step 4 and must outlive every delivery it
            # signed that a reader may still read (docs/operations.md, "Keys").
            typer.echo(
                f"warning: the worker's old signing key expires in {grace_days:g} days; "
                f"deliveries it signed and read after that are refused: give --grace-days "
                f"{_WORKER_GRACE_DAYS} or more (delivery retention + a week + the staging)",
                err=True,
            )
        if party == "governance" and purpose != "encrypt":
            _governance_rotated(store, grace_days)
        elif store.listed_by_directory() is None:
            typer.echo("no signed directory imported here yet: the new keys sign now")
        else:
            typer.echo(
                "the new keys sign once the signed directory naming them is imported here; "
                f"until then the old ones do (accord keys export --party {party})"
            )
        _print_table(created, store)

    @keys_app.command("retire")
    def retire(
        key_id: Annotated[str, typer.Argument(help="Key id (see 'accord keys list').")],
        directory: _DirOption = None,
    ) -> None:
        """Stop using a key: records under it no longer open."""
        _change_status(directory, key_id, "retire")

    @keys_app.command("revoke")
    def revoke(
        key_id: Annotated[str, typer.Argument(help="Key id (see 'accord keys list').")],
        directory: _DirOption = None,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Revoke a worker encryption key even if its state may still be sealed to it.",
            ),
        ] = False,
    ) -> None:
        """Revoke a compromised key: refused at once for signing, sealing and opening.

        In the owner's keystore, or in the IG officer's governance keystore (a compromised or
        unreachable organisation's key); the next signed directory carries it to everyone.
        A worker encryption key only with --force: see docs/operations.md, "Keys"."""
        _change_status(directory, key_id, "revoke", force)

    register_exchange(keys_app)
    app.add_typer(keys_app, name="keys")
