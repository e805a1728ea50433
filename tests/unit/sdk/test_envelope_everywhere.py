"""Every Publisher and Subscriber the broker's own commands make is given an envelope: left
out, it seals with the default KEM whatever ACCORD_ENVELOPE__KEM says, and an x25519
deployment's keystore is refused."""

from __future__ import annotations

import ast
from pathlib import Path

BROKER = Path(__file__).resolve().parents[3] / "broker"


def test_every_client_made_in_the_broker_is_given_an_envelope() -> None:
    made = []
    for path in sorted(BROKER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in {"Publisher", "Subscriber"}:
                where = f"{path.relative_to(BROKER.parent)}:{node.lineno}"
                made.append((where, any(k.arg == "envelope" for k in node.keywords)))
    assert len(made) >= 8  # publish, tail, the desk, the demo's
    assert [where for where, given in made if not given] == []
