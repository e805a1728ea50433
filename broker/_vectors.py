"""The command line shared by the test-vector generators (``python -m broker.*.vectors``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["vectors_main"]


def vectors_main(
    prog: str, default: Path, generate: Callable[[], dict[str, Any]], argv: list[str] | None
) -> int:
    """Write ``generate()`` to ``--out`` (default ``default``), or with ``--check`` only say
    whether the file is stale (exit 1). Writes nothing when the file is already current."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    text = json.dumps(generate(), indent=2, ensure_ascii=False) + "\n"
    if args.out.exists() and args.out.read_text("utf-8") == text:
        return 0
    sys.stdout.write(f"{'stale' if args.check else 'wrote'} {args.out}\n")
    if args.check:
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, "utf-8")
    return 0
