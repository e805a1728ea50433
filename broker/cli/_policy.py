from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Placeholder until this command group lands; registers nothing."""
