"""docs/desk.md's settings table names every sign-in setting the desk takes."""

from __future__ import annotations

import re
from pathlib import Path

from broker.config import SignInSettings

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "desk.md").read_text()


def test_every_sign_in_setting_is_in_the_settings_table() -> None:
    table = DOC.split("| Setting (`ACCORD_DESK__…`) |", 1)[1].split("\n\n", 1)[0]
    named = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z_]+)`", row.split(" | ", 1)[0])
    }
    assert {name.upper() for name in SignInSettings.model_fields} - named == set()
