"""The audit commands' index and checkpoint verifier, as the settings name them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.cli._common import kafka_as, keystore, own_keystore
from broker.cli._loop import run
from broker.cli._officer import cli_chain
from broker.config import Settings
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.audit import KeystoreAuditVerifier
    from broker.governance import AuditStore, ChainAppender
    from broker.keys import FileKeyStore
    from broker.policy import Policy


def _db_url(settings: Settings, db: str | None) -> str | None:
    if db is not None:
        return db
    return settings.audit.db.get_secret_value() if settings.audit.db else None


def open_index(
    settings: Settings, db: str | None, *, create: bool = False, read_only: bool = False
) -> AuditStore:
    from broker.governance import open_store

    url = _db_url(settings, db)
    return open_store(url, home=settings.home, create=create, read_only=read_only)


def is_copy(settings: Settings, db: str | None) -> bool:
    """Whether ``--db`` names an index other than the configured one (ACCORD_AUDIT_DB, else
    ``<home>/audit.db``): a copy, say, kept as evidence, which the commands that read open
    read-only (never caught up, migrated or tightened). Compared as the database reads each
    URL; one that cannot be read is taken for a copy."""
    from broker.governance import same_index

    if db is None:
        return False
    configured = settings.audit.db.get_secret_value() if settings.audit.db else None
    return not same_index(configured, db, home=settings.home)


def verifier_of(settings: Settings) -> KeystoreAuditVerifier:
    """Checks checkpoints against the signed key directory: the indexer's own keystore
    when it has one (a deployment gives it one holding public keys only), else the
    console's (one machine, as in the demo)."""
    from broker.audit import KeystoreAuditVerifier

    own = (settings.keys_dir / Principal.INDEXER / "keystore.json").is_file()
    console = (settings.keystore_path(Principal.CONSOLE) / "keystore.json").is_file()
    if not own and not console and any(settings.keys_dir.glob("*/keystore.json")):
        # A host of one keystore per principal with neither: say the indexer's, which a
        # deployment gives it, not the console's. (With no keys at all, the console's.)
        own_keystore(settings, Principal.INDEXER)
    return KeystoreAuditVerifier(
        keystore(settings, Principal.INDEXER if own else Principal.CONSOLE)
    )


def appender_of(
    settings: Settings, keys: FileKeyStore, store: AuditStore, host: str | None
) -> ChainAppender:
    """The command line's writer of its own audit chain (``cli_chain``), signing with the
    console's key from ``keys``."""
    from broker.audit import KeystoreAuditSigner, KeystoreAuditVerifier
    from broker.governance import ChainAppender

    return ChainAppender(
        store,
        kafka=kafka_as(settings, Principal.CONSOLE),
        chain=cli_chain(host),
        signer=KeystoreAuditSigner(keys, Principal.CONSOLE),
        verifier=KeystoreAuditVerifier(keys),
    )


def index_once(settings: Settings, store: AuditStore) -> None:
    """Index what is new (our own record included), so reports and look-ups show it at once."""
    from broker.governance import Indexer

    indexer = Indexer(store, verifier_of(settings), kafka_as(settings, Principal.CONSOLE))
    run(indexer.run(follow=False))


def policy_at_hand(settings: Settings) -> Policy | None:
    """The bundle the commands find (ACCORD_POLICIES, else ./policies), loaded, to read a
    SAR's condition-false clauses' conditions from; None when there is none or it does not
    load: a SAR is never refused for a bundle's fault (its table then says none is loaded)."""
    from broker.errors import AccordError
    from broker.policy import load_bundle

    found = settings.policies_at_hand()
    if found is None:
        return None
    try:
        return load_bundle(found)
    except (AccordError, RecursionError, OSError, ValueError):
        # A file nested past the parser (RecursionError) is as much the bundle's fault.
        return None


def console_keys_here(settings: Settings) -> FileKeyStore | None:
    """The console's keystore when this machine holds its signing key (what signs the
    command line's audit records), else None: an indexer's host, say, with public keys only."""
    from broker.errors import KeyStoreError

    if not (settings.keystore_path(Principal.CONSOLE) / "keystore.json").is_file():
        return None
    keys = keystore(settings, Principal.CONSOLE)
    try:
        keys.current_signing_key(Principal.CONSOLE)
    except KeyStoreError:
        return None
    return keys
