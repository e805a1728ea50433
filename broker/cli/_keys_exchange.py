"""``accord keys export|sign-directory|import|linkage``: public keys between organisations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.config import load_settings
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.keys import FileKeyStore

Dir = Annotated[
    Path | None,
    typer.Option("--dir", help="The keystore (default: the principal's in the keys folder)."),
]


def _store(directory: Path | None, principal: str) -> FileKeyStore:
    from broker.keys import FileKeyStore

    settings = load_settings()
    path = directory if directory is not None else settings.keystore_path(principal)
    return FileKeyStore(path, settings.keystore.passphrase)


def register_exchange(keys_app: typer.Typer) -> None:
    @keys_app.command("export")
    def export(
        party: Annotated[str, typer.Option("--party", help="The party whose keys to export.")],
        directory: Dir = None,
        out: Annotated[Path | None, typer.Option(help="Write here (default: stdout).")] = None,
    ) -> None:
        """Write a party's public keys (its entry for the directory), for the governance officer."""
        from broker.keys import export_entries

        data = export_entries(_store(directory, party), party)
        if out is None:
            typer.echo(data.decode(), nl=False)
        else:
            out.write_bytes(data)
            typer.echo(f"{party}'s public keys written to {out}")

    @keys_app.command("sign-directory")
    def sign(
        entries: Annotated[list[Path], typer.Argument(help="Parties' exported entries.")],
        out: Annotated[Path, typer.Option(help="Where the signed directory goes.")],
        directory: Dir = None,
    ) -> None:
        """In the governance keystore: merge the entries, sign the whole directory."""
        from broker.keys import sign_directory

        store = _store(directory, "governance")
        missing = [p for p in entries if not p.is_file()]
        if missing:
            raise UsageError(f"no such file: {missing[0]}")
        document = sign_directory(store, [(str(p), p.read_bytes()) for p in entries])
        out.write_bytes(document)
        signer = store.current_signing_key("governance").info.key_id
        typer.echo(f"signed directory written to {out}: {len(store.keys())} keys")
        typer.echo(f"signed by governance key {signer}: give parties this id out of band")

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
        from broker.keys import FileKeyStore, import_directory

        settings = load_settings()
        if not file.is_file():
            raise UsageError(f"no such file: {file}")
        path = directory if directory is not None else settings.keys_dir
        store = FileKeyStore(path, settings.keystore.passphrase)
        signed = import_directory(store, file.read_bytes(), where=file, trust=trust)
        typer.echo(f"directory {signed.serial} imported into {store.path}: {len(signed.keys)} keys")

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
    ) -> None:
        """Copy the linkage key into another keystore of the same organisation (the console's)."""
        from broker.keys import FileKeyStore

        settings = load_settings()
        target = FileKeyStore(to, settings.keystore.passphrase)
        target.set_linkage_key(_store(directory, "worker").linkage_key())
        typer.echo(f"linkage key copied to {target.path}")
