"""A desk store URL Accord does not open is refused in one line that quotes none of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.desk import open_desk_store
from broker.errors import UsageError


@pytest.mark.parametrize(
    "url",
    [
        "host=db.internal dbname=desk user=accord password=S3cretPW",  # libpq key=value
        "password=S3cretPW host=db.internal",
    ],
)
def test_a_libpq_key_value_string_is_refused_without_quoting_it(url: str, tmp_path: Path) -> None:
    """It holds the password in plain: the refusal says what to give instead, nothing more."""
    with pytest.raises(UsageError) as raised:
        open_desk_store(url, home=tmp_path, party="p")
    message = str(raised.value)
    assert message == (
        "desk store: not a URL (a libpq key=value string?): "
        "use sqlite:///PATH or postgresql://HOST/DB"
    )
    assert "s3cret" not in message.lower()


def test_an_unsupported_scheme_is_named_and_nothing_after_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        open_desk_store("mysql://accord:S3cretPW@db/desk", home=tmp_path, party="p")
    assert str(raised.value) == (
        "desk store: unsupported database 'mysql': use sqlite:///PATH or postgresql://HOST/DB"
    )


@pytest.mark.parametrize(
    "url", ["sqlite:", "sqlite://", "sqlite:///", "sqlite:////", " sqlite:/// "]
)
def test_an_sqlite_url_naming_no_file_is_refused_in_one_line(url: str, tmp_path: Path) -> None:
    """sqlite:/// and sqlite://// name the root folder: refused as naming no file, not left to
    sqlite3, whose OperationalError ended 'accord desk --store sqlite:///' in a traceback."""
    with pytest.raises(UsageError) as raised:
        open_desk_store(url, home=tmp_path, party="p")
    assert str(raised.value) == "desk store: give a file, e.g. sqlite:///var/lib/accord/desk.db"


def test_an_sqlite_url_with_four_slashes_names_the_absolute_file(tmp_path: Path) -> None:
    """As the audit index reads it: sqlite:////abs is /abs."""
    open_desk_store(f"sqlite:///{tmp_path / 'desk.db'}", home=tmp_path, party="p").close()
    open_desk_store(f"sqlite:////{tmp_path / 'desk.db'}", home=tmp_path, party="p").close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["desk.db"]
