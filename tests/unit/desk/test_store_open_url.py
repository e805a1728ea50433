"""A desk store URL Accord does not open is refused in one line that quotes none of it."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from broker.desk import open_desk_store
from broker.errors import ConfigError, UsageError


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


def _a_device(tmp_path: Path) -> Path:
    """A /dev/null of the test's own: run as root, the store once made /dev/null itself 0600
    (its chmod followed the name), and every other program's writes to it failed."""
    if os.geteuid() != 0:
        pytest.skip("only root can make a device node")
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    device.chmod(0o666)
    return device


@pytest.mark.parametrize("kind", ["folder", "in /proc", "under a file", "device"])
def test_an_sqlite_url_naming_what_cannot_hold_a_store_is_refused_in_one_line(
    kind: str, tmp_path: Path
) -> None:
    """A folder, a file /proc will not make, a device (disk I/O error): sqlite3's error
    ended the desk's start in a traceback (main catches AccordError and OSError)."""
    path = {
        "folder": tmp_path,
        "in /proc": Path("/proc/1/desk.db"),
        "under a file": tmp_path / "file" / "desk.db",
    }.get(kind) or _a_device(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as raised:
        open_desk_store(f"sqlite:///{path}", home=tmp_path, party="p")
    assert re.fullmatch(rf"desk store: cannot open {re.escape(str(path))}: \w+", str(raised.value))
    if kind == "device":
        assert stat.S_IMODE(path.stat().st_mode) == 0o666  # never made 0600 through the name
