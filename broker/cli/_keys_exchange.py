"""``accord keys export|sign-directory|import|linkage``: public keys between organisations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.config import load_settings, read_secret_file
from broker.errors import AccordError, KeyStoreError, UsageError
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.keys import FileKeyStore, KeyChange

Dir = Annotated[
    Path | None,
    typer.Option("--dir", help="The keystore (default: the principal's in the keys folder)."),
]


def given_dir(path: Path) -> Path:
    """``--dir``, refused in one line naming --dir when it holds no keystore: given on
    purpose, the folder is what to check, not ACCORD_KEYSTORE__PATH (a keys folder holding
    one keystore per principal gets the store's own advice, naming them)."""
    if not (path / "keystore.json").exists() and not any(path.glob("*/keystore.json")):
        raise UsageError(
            f"no keystore at {path}: check --dir (a keystore folder holds keystore.json); "
            "a lost one is restored from its backup"
        )
    return path


def _store(directory: Path | None, principal: str) -> FileKeyStore:
    from broker.keys import FileKeyStore

    settings = load_settings()
    path = given_dir(directory) if directory is not None else settings.keystore_path(principal)
    return FileKeyStore(path, settings.keystore_passphrase())


def register_exchange(keys_app: typer.Typer) -> None:
    @keys_app.command("export")
    def export(
        party: Annotated[str, typer.Option("--party", help="The party whose keys to export.")],
        directory: Dir = None,
        out: Annotated[Path | None, typer.Option(help="Write here (default: stdout).")] = None,
    ) -> None:
        """Write a party's public keys (its entry for the directory), for the governance officer."""
        from broker.keys import export_entries

        store = _store(directory, party)
        data = export_entries(store, party)
        signer = json.loads(data).get("signed_by")
        listed = store.listed_by_directory()
        if signer is not None and listed is not None and signer not in listed:
            # The master copy takes a listed party's export only under a key it lists.
            typer.echo(
                f"warning: {party}'s entries are signed by key {signer}, which the last key "
                "directory this keystore took does not list: import the latest directory "
                f"first; if {party} is in the directory, the IG officer takes them only with "
                f"--unsigned {party}, after checking with you out of band",
                err=True,
            )
        if signer is None:
            typer.echo(
                f"warning: {party}'s entries are not signed: this keystore holds no live "
                f"signing key of {party}; if {party} is in the key directory already, the IG "
                f"officer takes them only with --unsigned {party}, after checking with you "
                "out of band",
                err=True,
            )
        if out is None:
            typer.echo(data.decode(), nl=False)
        else:
            out.write_bytes(data)
            how = "" if signer is None else f", signed by {party}'s signing key {signer}"
            typer.echo(f"{party}'s public keys written to {out}{how}")

    @keys_app.command("sign-directory")
    def sign(
        *,
        out: Annotated[
            Path | None,
            typer.Option(help="Where the signed directory goes (not needed with --dry-run)."),
        ] = None,
        entries: Annotated[
            list[Path] | None,
            typer.Argument(help="Parties' exported entries (none: sign the master copy again)."),
        ] = None,
        directory: Dir = None,
        allow_second_key: Annotated[
            bool,
            typer.Option(
                "--allow-second-key",
                help="Sign an entry giving a party a new active key beside one of the same "
                "purpose that never expires (checked with the party out of band).",
            ),
        ] = False,
        unsigned: Annotated[
            list[str] | None,
            typer.Option(
                "--unsigned",
                metavar="PARTY",
                help="Take PARTY's entries unsigned (or signed by a key the directory does "
                "not list), though it is in the directory already: only for a party that lost "
                "every signing key, after checking its fingerprints with it out of band.",
            ),
        ] = None,
        no_party_check: Annotated[
            bool,
            typer.Option(
                "--no-party-check",
                help="Sign with no policy bundle here to check the entries' parties against "
                "(ACCORD_POLICIES, or policies/ in this folder): any party id is taken.",
            ),
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="Print what the directory would add or change, and sign, write and "
                "use nothing: compare the key ids with those read out first.",
            ),
        ] = False,
    ) -> None:
        """In the governance keystore: merge the entries, sign the whole directory."""
        _sign(
            entries or [], out, directory, allow_second_key, unsigned or [],
            no_party_check=no_party_check, dry_run=dry_run,
        )  # fmt: skip

    @keys_app.command("import")
    def import_(
        file: Annotated[Path, typer.Argument(help="A signed key directory.")],
        directory: Annotated[
            Path | None, typer.Option("--dir", help="The keystore (default: the keys folder).")
        ] = None,
        trust: Annotated[
            str | None,
            typer.Option(help="The governance key id to trust (first import; check it first)."),
        ] = None,
    ) -> None:
        """Take a signed directory: everyone's public keys, revocations included."""
        _import(file, directory, trust)

    linkage = typer.Typer(help="The linkage key behind subject keys.", no_args_is_help=True)
    keys_app.add_typer(linkage, name="linkage")

    @linkage.command("create")
    def create(directory: Dir = None) -> None:
        """Make the linkage key, once, in the worker's keystore."""
        store = _store(directory, "worker")
        store.set_linkage_key()
        typer.echo(f"linkage key made in {store.path}; copy it to the console's keystore")

    @linkage.command("copy")
    def copy(
        to: Annotated[Path, typer.Option("--to", help="The keystore to copy it into.")],
        directory: Dir = None,
        to_passphrase_file: Annotated[
            Path | None,
            typer.Option(help="The target keystore's passphrase, when it has its own."),
        ] = None,
    ) -> None:
        """Copy the linkage key into another keystore of the same organisation (the console's)."""
        _copy_linkage(directory, to, to_passphrase_file)


def _bundle_parties(entries: list[Path], no_party_check: bool) -> list[str] | None:
    """The configured policy bundle's party ids (ACCORD_POLICIES, else policies/ here), to
    check entries against. With no bundle here, entries files are refused (default deny: a
    look-alike party, "Governance" say, would join unchecked) unless ``no_party_check``,
    said loudly on stderr; None then."""
    from broker.cli._keys_bundle import policy_parties

    bundle = load_settings().policies_at_hand()
    if bundle is not None:
        return policy_parties(bundle)
    if not entries:
        return None  # the master copy signed again: no new party to check
    if not no_party_check:
        raise UsageError(
            "no policy bundle here (ACCORD_POLICIES, or policies/ in this folder) to check the "
            "entries' parties against parties.yaml: run where the bundle is, or give "
            "--no-party-check to sign them unchecked; nothing was signed"
        )
    typer.echo(
        "WARNING: --no-party-check: the entries' parties were NOT checked against a policy "
        "bundle's parties.yaml: read every party id in the change list below",
        err=True,
    )
    return None


def _warn_unsigned(taken: list[str], *, would: bool) -> None:
    # Loud: nothing but the officer's own check says these keys are the party's.
    done = "would be" if would else "were"
    for party in taken:
        typer.echo(
            f"WARNING: {party}'s entries {done} signed into the directory WITHOUT proof that "
            f"{party} sent them (--unsigned {party}): every keystore will trust these keys; "
            f"be sure you checked their fingerprints with {party} out of band",
            err=True,
        )


def _sign(
    entries: list[Path],
    out: Path | None,
    directory: Path | None,
    allow_second_key: bool,
    unsigned: list[str],
    *,
    no_party_check: bool = False,
    dry_run: bool = False,
) -> None:
    from broker.keys import last_signed_serial, sign_directory

    if out is None and not dry_run:
        raise UsageError("--out: name where the signed directory goes (or give --dry-run)")
    store = _store(directory, "governance")
    missing = [p for p in entries if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {missing[0]}")
    parties = _bundle_parties(entries, no_party_check)
    since = last_signed_serial(store)  # what the change list is against (read before signing)
    changes: list[KeyChange] = []
    taken: list[str] = []
    document = sign_directory(
        store,
        [(str(p), p.read_bytes()) for p in entries],
        parties=parties,
        allow_second_key=allow_second_key,
        changes=changes,
        unsigned=unsigned,
        taken_unsigned=taken,
        dry_run=dry_run,
        publish=None if out is None else lambda document: _write_out(out, document),
    )
    if dry_run:
        # Before anything is signed, for the officer to compare with the ids read out.
        typer.echo(f"dry run: nothing signed or written; signing would, from {store.path}:")
        _print_changes(changes, since)
        _warn_unsigned(taken, would=True)  # the warning most needed before signing
        return
    assert out is not None  # noqa: S101  # checked before anything was read
    _warn_unsigned(taken, would=False)
    signer = json.loads(document)["signature"]["key_id"]  # the key that did sign it
    typer.echo(
        f"signed directory written to {out}: {len(store.keys())} keys, from keystore {store.path}"
    )
    _print_changes(changes, since)
    typer.echo(f"signed by governance key {signer}: give parties this id out of band")


def _write_out(out: Path, document: bytes) -> None:
    """The signed directory at ``out``, whole or not at all: a half-written one would be
    published as if signed, while the keystore records it as the last."""
    part = out.with_name(f".{out.name}.part")
    try:
        part.write_bytes(document)
        part.replace(out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        # The path the officer gave, not the temporary one beside it.
        raise OSError(exc.errno, exc.strerror, str(out)) from exc


def _print_changes(changes: list[KeyChange], since: int | None) -> None:
    """What the officer vouches for to everyone: each key added, revoked, retired or listed
    otherwise than in the last directory signed here (serial ``since``; None: none is on
    record, so only what the entries change in the master copy is known)."""
    for change in changes:
        typer.echo(f"  {change.describe()}")
    if changes:
        return
    if since is not None:
        typer.echo(f"  no key added, revoked or changed since directory {since}")
    else:
        # A revoke or retire made in this keystore since the last directory is in the master
        # copy already: "no change" would hide it.
        typer.echo(
            "  no key added or changed by these entries; this keystore keeps no record of "
            "what the last directory it signed listed, so keys revoked or retired here "
            "since are not shown, and the next signing will not list them either (it is "
            "compared with this directory): read 'accord keys list'"
        )


def _import(file: Path, directory: Path | None, trust: str | None) -> None:
    from broker.keys import FileKeyStore, import_directory, trusted_signers

    settings = load_settings()
    if not file.is_file():
        raise UsageError(f"no such file: {file}")
    path = directory if directory is not None else settings.keys_dir
    # A first import (--trust) into a folder with no keystore makes one holding public
    # keys only: what a verifier such as the audit indexer needs, and nothing more.
    new = trust is not None and not (path / "keystore.json").is_file()
    if directory is not None and not new:
        given_dir(directory)
    existed = path.exists()
    try:
        store = FileKeyStore(path, settings.keystore_passphrase(), create=new)
        before = {k.key_id for k in trusted_signers(store)}
        signed = import_directory(store, file.read_bytes(), where=file, trust=trust)
    except AccordError:
        if new and not existed:
            shutil.rmtree(path, ignore_errors=True)  # a failed first import makes nothing
        raise
    made = " (a new keystore, public keys only)" if new else ""
    typer.echo(f"directory {signed.serial} imported into {path}{made}: {len(signed.keys)} keys")
    _warn_lost_signing_keys(store)
    _warn_new_governance_keys(store, before | ({trust} if trust else set()))


def _warn_new_governance_keys(store: FileKeyStore, known: set[str]) -> None:
    """Loud, as a new signer of directories is: every later directory it signs is taken
    without --trust. A rotation introduces one; an entry slipped into a directory would too."""
    from broker.keys import trusted_signers

    for key in trusted_signers(store):
        if key.key_id not in known:
            typer.echo(
                f"WARNING: this keystore now trusts a NEW governance signing key {key.key_id}, "
                "which may sign every later key directory: verify this id with the IG officer "
                "out of band (a governance rotation introduces one); if they did not make it, "
                "tell them at once",
                err=True,
            )


def _warn_lost_signing_keys(store: FileKeyStore) -> None:
    """Said at import, before anything is sent: the SDK refuses such a keystore (_keycheck)."""
    from broker.keys import lost_signing_keys, lost_signing_keys_advice, unheld_encryption_keys

    for party in store.private_parties():
        if lost := lost_signing_keys(store, party):
            advice = lost_signing_keys_advice(party)
            typer.echo(f"warning: {advice}; the directory lists {', '.join(lost)}", err=True)
        if unheld := unheld_encryption_keys(store, party):
            typer.echo(
                f"warning: the key directory lists encryption key {', '.join(unheld)} of "
                f"{party}, whose private half this keystore does not hold: the broker seals "
                f"{party}'s deliveries to its newest live encryption key, and those sealed to "
                f"one not held here never open here: restore {party}'s keystore from its "
                "backup, or have the IG officer retire that key in the governance keystore "
                "and sign a new directory",
                err=True,
            )


def _copy_linkage(directory: Path | None, to: Path, passphrase_file: Path | None) -> None:
    from pydantic import SecretStr

    from broker.keys import FileKeyStore

    if passphrase_file is None:
        passphrase = load_settings().keystore_passphrase()
    else:
        try:
            text = read_secret_file(passphrase_file, named="--to-passphrase-file")
        except (OSError, UnicodeDecodeError):
            raise UsageError(f"--to-passphrase-file: cannot read {passphrase_file}") from None
        passphrase = SecretStr(text.removesuffix("\n"))
    key = _store(directory, "worker").linkage_key()
    try:
        target = FileKeyStore(to, passphrase)
    except KeyStoreError as exc:
        if passphrase_file is not None or not str(exc).startswith("wrong passphrase"):
            raise
        # Each keystore has a passphrase of its own (docs/operations.md, Keys): say how to
        # give the target's, rather than leave the source's looking wrong.
        raise KeyStoreError(
            f"{exc}: give its own passphrase with --to-passphrase-file FILE"
        ) from None
    # The key links every child's records: it belongs only in the broker's own keystores.
    owners = set(target.private_parties())
    if not owners & {Principal.CONSOLE, Principal.WORKER}:
        held = ", ".join(sorted(owners)) or "no one"
        raise UsageError(f"--to: {target.path} is not the console's keystore (it holds {held}'s)")
    target.set_linkage_key(key)
    typer.echo(f"linkage key copied to {target.path}")
