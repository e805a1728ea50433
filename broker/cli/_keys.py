"""``accord keys``: create, protect and list parties' keys; the app every ``keys`` command is
registered on (rotate, retire and revoke: :mod:`._keys_change`; between organisations:
:mod:`._keys_exchange`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker._words import plural
from broker.cli._keys_bundle import party_kinds, policy_parties
from broker.cli._keys_change import register_changes
from broker.cli._keys_exchange import register_exchange
from broker.cli._keys_store import DirOption, key_row, open_store, print_table, signing_ids
from broker.config import KemSuite
from broker.errors import KeyStoreError, UsageError

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.keys import FileKeyStore


def _enrolment_secrets(store: FileKeyStore, party: str, settings: Settings) -> list[Path]:
    """Make the secrets of the console's (or ``party``'s desk's) web app that the store lacks:
    the key that seals its accounts' second factors, the device-cookie key and, for a desk,
    its linkage secret (a party new to the store has its own already: ``_init`` makes it
    before the party's keys), moving in the plain files an older Accord kept. Made here,
    with the store, because no server makes them: a keystore archived for Kubernetes is
    unpacked into memory at each start, and a secret made there would be lost at the next,
    and every officer's code with it. Only ``broker.keys`` is needed, so an SDK-only install
    enrols too. Returns the older plain files moved in (and so removed)."""
    from broker.keys import (
        LEGACY_DEVICE_FILE,
        LINKAGE_FILE,
        TOTP_SECRET_NAME,
        desk_linkage_key,
        device_key,
    )
    from broker.principals import Principal

    console = party == Principal.CONSOLE
    owner = _web_owner(party)
    store.local_secret(TOTP_SECRET_NAME)  # what ``TotpBox.from_keystore(create=True)`` makes
    # An older app's plain device-cookie file is this home's, beside its accounts: it moves
    # only into the keystore this home's servers use. One made with --dir (for another host,
    # at a key ceremony, say) gets a key of its own, not this home's, nor deletes its file.
    users: Path | None = None
    if store.path.resolve() == settings.keystore_path(party).resolve():
        users = settings.console_users_file if console else settings.desk_users_file(party)
    plains = [] if users is None else [users.parent / LEGACY_DEVICE_FILE]
    plains += [] if console else [store.path / LINKAGE_FILE]
    there = [plain for plain in plains if plain.exists()]
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
    return [plain for plain in there if not plain.exists()]


def _web_owner(party: str) -> str:
    """The owner ``party``'s web app's device-cookie key is made for: its console or desk."""
    from broker.principals import Principal

    return "console" if party == Principal.CONSOLE else f"desk:{party}"


def _web_secrets(party: str) -> list[tuple[str, str]]:
    """The keystore secrets enrolment makes for ``party``'s web app, each with the words
    ``keys init`` names it by (never its value)."""
    from broker.keys import TOTP_SECRET_NAME, device_secret_name, linkage_secret_name
    from broker.principals import Principal

    desk = (
        [] if party == Principal.CONSOLE else [("desk linkage secret", linkage_secret_name(party))]
    )
    return [
        *desk,
        ("second-factor key", TOTP_SECRET_NAME),
        ("known-device key", device_secret_name(_web_owner(party))),
    ]


def _made_line(made: list[str], moved: list[Path]) -> str:
    """What ``keys init --party`` made besides keys, and the older files it moved in: an
    operator re-running it on an existing keystore sees what changed; empty when nothing."""
    said = [f"made its {_listing(made)}"] if made else []
    said += [f"moved the older {_listing([str(p) for p in moved])} into it"] if moved else []
    return "".join(f"; {part}" for part in said)


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


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
    kinds = party_kinds(bundle) or {}
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
    read = None if bundle is None else party_kinds(bundle)
    kinds = read or {}
    path = directory if directory is not None else settings.keystore_path(party)
    existed, new = path.exists(), not (path / "keystore.json").exists()
    made_before = set(path.iterdir()) if existed and path.is_dir() else set()
    try:
        store = FileKeyStore(path, settings.keystore_passphrase(), create=True)
        purposes = SPECIAL_PRINCIPALS.get(party, ALL_PURPOSES)
        web = _has_web_app(party, kinds)
        secrets = _web_secrets(party) if web else []
        held = {name for _, name in secrets if store.has_secret(name)}
        moved: list[Path] = []
        new_party = party not in store.private_parties()
        if web and new_party and party not in SPECIAL_PRINCIPALS:
            # Its own linkage secret before its keys: were this run to fail after the keys,
            # the next would take the party for an old one, and give it the shared secret.
            from broker.keys import desk_linkage_key

            desk_linkage_key(store, party=party, create=True, new_party=True)
        created = store.ensure_party(party, purposes=purposes, kem=suite)
        if web:
            moved = _enrolment_secrets(store, party, settings)
    except BaseException:
        if new:
            _unmake(path, existed, made_before)
        raise
    made = [what for what, name in secrets if name not in held and store.has_secret(name)]
    keys = plural(len(created), "new key")
    typer.echo(f"keystore {store.path}: {keys} for {party}{_made_line(made, moved)}")
    if made and party not in SPECIAL_PRINCIPALS and party not in kinds:
        typer.echo(_unknown_kind_note(party, bundle, read=read is not None))
    if created:
        print_table(created, store)
    _warn_unprotected(store.protected)


def _unknown_kind_note(party: str, bundle: Path | None, *, read: bool) -> str:
    """Why a party got a desk's secrets with no bundle saying it runs one: an agency reading
    them would otherwise take the desk for its own, or the secrets for a mistake."""
    if bundle is None:
        where = "no policy bundle here"
    elif read:
        where = f"none in the bundle {bundle}"
    else:  # it may well name the party an agency: say so rather than blame the bundle
        where = f"the bundle {bundle} could not be read here"
    return (
        f"note: {party}'s kind is unknown ({where}), so it got a desk's secrets in case it "
        "runs one; an agency needs none (a new keystore made with --policies DIR naming it "
        "an agency gets none)"
    )


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
        directory: DirOption = None,
        kem: Annotated[
            KemSuite | None, typer.Option("--kem", help="KEM for new encryption keys.")
        ] = None,
    ) -> None:
        """Make one party's keys in its own keystore (--party); or, for a demo or a test, a
        keystore per party and service of a bundle under --dir, wired with a signed directory.

        A party's desk and web secrets are made with its keys, unless the bundle (--policies,
        else the configured one) names it an agency; with no bundle giving its kind, they are
        made, and a note says so. With --party, idempotent: a party that
        has active keys keeps them. Without, only into a folder that holds no keystore yet.
        A first run that fails leaves no keystore behind.
        """
        _init(policies, party, directory, kem)

    @keys_app.command("protect")
    def protect(directory: DirOption = None) -> None:
        """Encrypt a keystore made unencrypted (ACCORD_KEYSTORE__PROTECTION=none) under
        ACCORD_KEYSTORE__PASSPHRASE: the one at --dir, or each one under it.

        Stop the services that use it first. The unencrypted files are deleted, not wiped:
        if the keys ever guarded real data, rotate them afterwards.
        """
        _protect(directory)

    @keys_app.command("list")
    def list_keys(
        directory: DirOption = None,
        party: Annotated[str | None, typer.Option("--party", help="Only this party.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    ) -> None:
        """List the public key directory: ids, purposes, algorithms and status; IN_USE marks
        the signing key each of the keystore's own parties signs with now (for governance,
        the one sign-directory signs with)."""
        store = open_store(directory, party)
        infos = store.keys(party)
        if party is not None and not infos:
            raise UsageError(f"no keys for party {party}")
        if as_json:
            signing = signing_ids(store)
            for info in infos:
                typer.echo(json.dumps(key_row(info, signing), sort_keys=True))
        else:
            print_table(infos, store)

    register_changes(keys_app)
    register_exchange(keys_app)
    app.add_typer(keys_app, name="keys")
