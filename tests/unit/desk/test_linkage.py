"""desk-linkage.key: 32 random bytes, 0600, created once, the same for every desk process."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from broker.desk import LINKAGE_FILE, child_key, desk_linkage_key
from broker.errors import KeyStoreError


def test_the_key_is_created_once_private_and_then_read(tmp_path: Path) -> None:
    first = desk_linkage_key(tmp_path)
    assert len(first) == 32
    mode = stat.S_IMODE((tmp_path / LINKAGE_FILE).stat().st_mode)
    assert mode == 0o600
    assert desk_linkage_key(tmp_path) == first
    assert desk_linkage_key(tmp_path / ".." / tmp_path.name) == first


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=4) as pool:
        keys = list(pool.map(desk_linkage_key, [tmp_path] * 8))
    assert len(set(keys)) == 1


def test_a_key_readable_by_others_or_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    desk_linkage_key(tmp_path)
    path = tmp_path / LINKAGE_FILE
    os.chmod(path, 0o644)  # noqa: PTH101  # the test needs exactly this mode
    with pytest.raises(KeyStoreError, match="0600"):
        desk_linkage_key(tmp_path)
    path.write_bytes(b"x" * 40)
    with pytest.raises(KeyStoreError, match="32 bytes"):
        desk_linkage_key(tmp_path)


def test_no_keystore_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="no keystore folder"):
        desk_linkage_key(tmp_path / "missing")


def test_a_child_whose_names_are_not_strings_is_not_keyed() -> None:
    base = {"role": "child", "given_name": "Mary Ann", "family_name": "Hollis",
            "dob": "2019-03-02"}  # fmt: skip
    assert child_key(b"k" * 32, base) is not None
    assert child_key(b"k" * 32, {**base, "given_name": 123}) is None
    assert child_key(b"k" * 32, {**base, "given_name": " MARY ANN "}) == child_key(b"k" * 32, base)
