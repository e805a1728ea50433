"""An entries document of a party already in the directory must be signed by one of that
party's live signing keys there (schemas/key-directory.md §5): otherwise anyone handing the
IG officer a file naming the party could rotate its keys to their own."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.config import KemSuite
from broker.envelope import KeyInfo, KeyPurpose
from broker.errors import KeyStoreError
from broker.keys import FileKeyStore, export_entries, import_directory
from broker.keys import sign_directory as _sign_directory
from broker.keys._directory import entry_json
from broker.keys._entries import parse_entries, sign_entries
from tests.unit.keys.conftest import keystore as _store


def _serial(root: Path) -> int:
    return int(json.loads(_sign_directory(_store(root, "governance"), []))["serial"])


def _forged_rotation(root: Path, tmp_path: Path) -> tuple[dict[str, object], FileKeyStore]:
    """What an attacker hands in for wmp: wmp's keys given an expiry, and their own new key
    (made in their own keystore, so they hold it)."""
    attacker = FileKeyStore(tmp_path / "attacker", None, create=True)
    attacker.ensure_party("wmp", purposes=[KeyPurpose.SIGN, KeyPurpose.ENCRYPT],
                          kem=KemSuite.X25519)  # fmt: skip
    soon = datetime.now(UTC) + timedelta(hours=1)
    old = [replace(k, not_after=soon) for k in _store(root, "governance").keys("wmp")]
    doc = {
        "format": "accord-key-entries/v1",
        "party": "wmp",
        "keys": [entry_json(k) for k in [*old, *attacker.keys("wmp")]],
    }
    return doc, attacker


def test_a_forged_unsigned_rotation_of_an_existing_party_is_refused_and_nothing_signed(
    root: Path, tmp_path: Path
) -> None:
    doc, attacker = _forged_rotation(root, tmp_path)
    governance = _store(root, "governance")
    before = _serial(root)
    with pytest.raises(KeyStoreError) as caught:
        _sign_directory(governance, [("wmp.json", json.dumps(doc).encode())])
    assert str(caught.value) == (
        "wmp.json: wmp already has keys in the directory, so its entries must be signed by "
        "one of them (accord keys export signs them; for a party that lost every one, see "
        "--unsigned); nothing was signed"
    )
    assert all(governance.public_key(k.key_id) is None for k in attacker.keys("wmp"))
    assert all(k.not_after is None for k in governance.keys("wmp"))
    assert _serial(root) == before + 1  # the refused document used no serial


def test_a_forged_rotation_signed_by_the_key_it_adds_is_refused(root: Path, tmp_path: Path) -> None:
    doc, attacker = _forged_rotation(root, tmp_path)
    own = attacker.current_signing_key("wmp")
    data = json.dumps(sign_entries(doc, own)).encode()
    governance = _store(root, "governance")
    with pytest.raises(KeyStoreError) as caught:
        _sign_directory(governance, [("wmp.json", data)])
    message = str(caught.value)
    assert message.startswith("wmp.json: wmp already has keys in the directory")
    assert f"not by key {own.info.key_id}, which the directory does not list as live" in message
    assert message.endswith("; nothing was signed")
    assert governance.public_key(own.info.key_id) is None


def test_another_partys_valid_signature_does_not_count(root: Path, tmp_path: Path) -> None:
    """cog-tipton's live key proves nothing about wmp's entries."""
    doc, _ = _forged_rotation(root, tmp_path)
    hub = _store(root, "cog-tipton").current_signing_key("cog-tipton")
    with pytest.raises(KeyStoreError, match=f"signed by key {hub.info.key_id}, which is no"):
        _sign_directory(
            _store(root, "governance"), [("wmp.json", json.dumps(sign_entries(doc, hub)).encode())]
        )


def test_an_honest_rotation_export_is_signed_by_the_listed_key_and_is_taken(root: Path) -> None:
    wmp, governance = _store(root, "wmp"), _store(root, "governance")
    listed = wmp.current_signing_key("wmp").info
    created = wmp.rotate("wmp", kem=KemSuite.X25519)
    exported = export_entries(wmp, "wmp")
    assert json.loads(exported)["signed_by"] == listed.key_id  # not the new key: none has it
    document = _sign_directory(governance, [("wmp.json", exported)])
    assert {k.key_id for k in created} <= {k["key_id"] for k in json.loads(document)["keys"]}
    import_directory(wmp, document, where=root / "d.json")
    # The next export is signed by the new key, which the directory now lists.
    again = export_entries(wmp, "wmp")
    [new_sign] = [k for k in created if k.purpose is KeyPurpose.SIGN]
    assert json.loads(again)["signed_by"] == new_sign.key_id
    _sign_directory(governance, [("wmp.json", again)])


def test_a_document_changed_after_signing_is_refused_even_for_a_new_party(
    root: Path, tmp_path: Path
) -> None:
    newcomer = FileKeyStore(tmp_path / "swbh", None, create=True)
    newcomer.ensure_party("swbh", kem=KemSuite.X25519)
    doc = json.loads(export_entries(newcomer, "swbh"))
    doc["keys"] = [k for k in doc["keys"] if k["purpose"] == "sign"]  # changed in transit
    with pytest.raises(KeyStoreError, match="does not verify"):
        _sign_directory(_store(root, "governance"), [("swbh.json", json.dumps(doc).encode())])


def test_a_new_party_may_hand_in_unsigned_or_self_signed_entries(
    root: Path, tmp_path: Path
) -> None:
    governance = _store(root, "governance")
    for party in ("swbh", "dudley"):
        newcomer = FileKeyStore(tmp_path / party, None, create=True)
        newcomer.ensure_party(party, kem=KemSuite.X25519)
        signed = export_entries(newcomer, party)
        assert json.loads(signed)["signed_by"] == newcomer.current_signing_key(party).info.key_id
        data = signed if party == "swbh" else _unsigned(signed)
        taken: list[str] = []
        _sign_directory(governance, [(f"{party}.json", data)], taken_unsigned=taken)
        assert taken == []
        assert {k.key_id for k in governance.keys(party)} == {
            k.key_id for k in newcomer.keys(party)
        }


def _unsigned(data: bytes) -> bytes:
    doc = json.loads(data)
    del doc["signed_by"], doc["signature"]
    return json.dumps(doc).encode()


def test_unsigned_party_takes_the_entries_on_the_officers_word_and_says_so(
    root: Path, tmp_path: Path
) -> None:
    """A party that lost every signing key re-makes its keys; the officer checks them out of
    band and names the party: only that party's document is let through."""
    doc, attacker = _forged_rotation(root, tmp_path)  # here: wmp itself, keys re-made
    governance = _store(root, "governance")
    data = json.dumps(doc).encode()
    with pytest.raises(KeyStoreError, match="wmp already has keys"):
        _sign_directory(governance, [("wmp.json", data)], unsigned=["cog-tipton"])
    taken: list[str] = []
    _sign_directory(governance, [("wmp.json", data)], unsigned=["wmp"], taken_unsigned=taken)
    assert taken == ["wmp"]
    assert all(governance.public_key(k.key_id) is not None for k in attacker.keys("wmp"))


def test_a_signature_by_a_key_expired_in_the_master_copy_does_not_count(root: Path) -> None:
    wmp, governance = _store(root, "wmp"), _store(root, "governance")
    wmp.rotate("wmp", kem=KemSuite.X25519, grace=timedelta(days=1))
    exported = export_entries(wmp, "wmp")
    _sign_directory(governance, [("wmp.json", exported)])  # the grace now in the master copy
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(KeyStoreError, match="wmp already has keys"):
        _sign_directory(governance, [("wmp.json", exported)], now=later)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d.update(note="x"), "has members accord-key-entries/v1 does not know"),
        (lambda d: d.pop("signature"), "signed_by and signature go together"),
        (lambda d: d.update(signed_by="ABC"), "signed_by: must be the signing key's id"),
        (lambda d: d.update(signature="AAAA"), "signature: must be the 64-byte Ed25519"),
    ],
)
def test_a_malformed_signature_or_an_unknown_member_is_refused_naming_it(
    root: Path, edit: object, reason: str
) -> None:
    doc = json.loads(export_entries(_store(root, "wmp"), "wmp"))
    edit(doc)  # type: ignore[operator]
    with pytest.raises(KeyStoreError, match=reason):
        parse_entries(json.dumps(doc).encode(), "wmp.json")


def test_an_export_from_a_store_with_no_live_signing_key_is_unsigned(root: Path) -> None:
    wmp = _store(root, "wmp")
    signing: KeyInfo = wmp.current_signing_key("wmp").info
    wmp.retire(signing.key_id)
    assert "signed_by" not in json.loads(export_entries(wmp, "wmp"))


@pytest.mark.parametrize("name", ["governance ", "Governance!", "wmp\u200b", "wmp\x1b[2K\r"])
def test_an_entries_file_naming_a_party_that_is_no_identifier_is_refused_without_echoing_it(
    root: Path, tmp_path: Path, name: str
) -> None:
    """A party id outside the keystore's rule (letters, digits and . _ : -) never joins the
    directory as a look-alike party, and the refusal never repeats it (control codes)."""
    attacker = FileKeyStore(tmp_path / "attacker", None, create=True)
    attacker.ensure_party("tmpp", purposes=[KeyPurpose.SIGN], kem=KemSuite.X25519)
    keys = [entry_json(replace(k, party=name)) for k in attacker.keys("tmpp")]
    for doc in (
        {"format": "accord-key-entries/v1", "party": name, "keys": keys},
        {"format": "accord-key-entries/v1", "party": "wmp", "keys": keys},
    ):
        with pytest.raises(KeyStoreError) as err:
            _sign_directory(_store(root, "governance"), [("x.json", json.dumps(doc).encode())])
        text = str(err.value)
        assert "not letters, digits and . _ : -" in text
        assert name not in text
        assert "\x1b" not in text
    assert name not in _store(root, "governance").parties()


@pytest.mark.parametrize("member", ["key_id", "alg", "public", "status", "purpose", "created_at",
                                    "not_after", "status_changed_at"])  # fmt: skip
def test_a_number_where_an_entry_holds_a_string_is_refused_in_one_line(
    root: Path, member: str
) -> None:
    """Strings only: a big integer would break the canonical form (RFC 8785), a traceback."""
    wmp = _store(root, "wmp")
    document = json.loads(export_entries(wmp, "wmp"))
    document["keys"][0][member] = 10**20  # after wmp signed: refused before its signature
    with pytest.raises(KeyStoreError, match=rf"keys\[0\]\.{member}: must be a JSON string"):
        _sign_directory(_store(root, "governance"), [("wmp.json", json.dumps(document).encode())])


def test_a_directory_whose_serial_is_beyond_rfc_8785_is_refused_in_one_line(root: Path) -> None:
    document = json.loads(_sign_directory(_store(root, "governance"), []))
    for serial in (10**20, "7", 7.0, True):
        document["serial"] = serial
        with pytest.raises(KeyStoreError, match="serial: must be a whole number"):
            import_directory(_store(root, "wmp"), json.dumps(document).encode(), where=root)
