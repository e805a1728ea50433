"""``accord desk``: the recipients' desk (docs/desk.md). Each part registers its commands."""

from __future__ import annotations

import typer

from broker.cli import _desk_flags


def register(app: typer.Typer) -> None:
    desk = typer.Typer(
        help="The recipients' desk: flags, referrals, notices.", no_args_is_help=True
    )
    app.add_typer(desk, name="desk")
    _desk_flags.register(desk)
