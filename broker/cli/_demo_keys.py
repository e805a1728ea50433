"""The demo's keystores: sealed under a passphrase, as a deployment's are.

With ``ACCORD_KEYSTORE__PASSPHRASE`` set, the demo uses it. Without, it makes one passphrase
once, in ``<home>/keystore-passphrase`` (0600, beside the keys folder rather than in it, as
the Kafka logins in ``kafka-data/clients`` are), and other ``accord`` commands read it with
``ACCORD_KEYSTORE__PASSPHRASE_FILE``. Keystores an older demo made unencrypted are put under
it in place. ``ACCORD_KEYSTORE__PROTECTION=none`` is the explicit way to have them in the
clear, and every part that opens one then says so.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import typer
from pydantic import SecretStr

from broker.config import DEMO_PASSPHRASE_FILE, KeyProtection, Settings
from broker.errors import KeyStoreError
from broker.keys import init_keystores, keystores_under, protect_keystores

__all__ = ["demo_keystores"]


def demo_keystores(settings: Settings, parties: list[str]) -> tuple[Settings, Path | None]:
    """A keystore per party and service under the demo's passphrase; the settings that open
    them, and the passphrase file when the demo made or reused its own."""
    made: Path | None = None
    if (
        settings.keystore.passphrase is None
        and settings.keystore.protection is not KeyProtection.NONE
    ):
        made = settings.home / DEMO_PASSPHRASE_FILE
        passphrase = SecretStr(_read_or_make(made))
        keystore = settings.keystore.model_copy(update={"passphrase": passphrase})
        settings = settings.model_copy(update={"keystore": keystore})
        root = settings.keys_dir
        if root.is_dir() and keystores_under(root):
            for path in protect_keystores(root, passphrase):
                typer.echo(
                    f"keystore {path}: private keys now encrypted under the demo's passphrase"
                )
        typer.echo(
            f"keystores sealed under the passphrase in {made} (for other accord commands: "
            f"export ACCORD_KEYSTORE__PASSPHRASE_FILE={made})"
        )
    init_keystores(
        settings.keys_dir,
        parties,
        passphrase=settings.keystore_passphrase(),
        kem=settings.envelope.kem,
    )
    return settings, made


def _read_or_make(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        try:
            os.write(fd, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.stat().st_mode & 0o077:
        raise KeyStoreError(f"{path} is readable by others; chmod 600 it")
    try:
        text = path.read_text(encoding="utf-8").removesuffix("\n")
    except UnicodeDecodeError:
        raise KeyStoreError(
            f"{path} is not UTF-8 text: remove it, or set ACCORD_KEYSTORE__PASSPHRASE"
        ) from None
    if not text.strip():
        raise KeyStoreError(f"{path} is empty: remove it, or set ACCORD_KEYSTORE__PASSPHRASE")
    return text
