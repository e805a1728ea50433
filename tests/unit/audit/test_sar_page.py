"""The SAR attachment (``accord audit subject --format html``) as a page: its language, a
viewport for a phone, and its content in a main landmark."""

from __future__ import annotations

import re

from broker.cli._audit_render import disclosure


def test_the_sar_page_has_a_language_a_viewport_and_a_main_landmark() -> None:
    page = disclosure([], "html", produced=["Produced 2026-11-23 09:00 UTC by ig.jo"])
    assert '<html lang="en-GB">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    main = re.search(r"<body><main>(.*)</main></body>", page, re.S)
    assert main
    assert "<h1>Disclosure log</h1>" in main.group(1)
    assert '<ul id="produced">' in main.group(1)
    assert "<table>" in main.group(1)
