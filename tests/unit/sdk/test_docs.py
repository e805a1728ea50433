"""docs/sdk.md quotes what the code says: its example messages are produced verbatim, and its
snippets import what exists and give each client its own party's keystore."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import re
import symtable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer

from broker.config import KafkaSettings
from broker.events import parse_event
from broker.kafka import KafkaClients
from broker.sdk import RowProblem, read_export
from broker.synthetic import SyntheticFamilies

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "sdk.md"
AT = datetime(2026, 11, 22, tzinfo=UTC)


def test_the_quoted_rejection_of_a_bad_nhs_number_is_what_a_bulk_export_reports(
    tmp_path: Path,
) -> None:
    quoted = re.findall(r"^# rejected \S+ (line \d+: .+)$", DOC.read_text(), re.MULTILINE)
    assert len(quoted) == 1
    fam = SyntheticFamilies(seed=3, today=date(2026, 11, 22))
    occurred = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
    child = fam.subject("child")
    good = fam.event("police.domestic_incident", "wmp", subjects=[child], occurred_at=occurred)
    bad = json.loads(json.dumps(good, default=str))
    bad["event_id"] = "a1d1b7d4-50f6-4d7e-9d5a-2f6a0b0c0d01"
    bad["subjects"][0]["nhs_number"] = "9990000001"  # a 999 number whose check digit is wrong
    export = tmp_path / "export.jsonl"
    export.write_text(json.dumps(good, default=str) + "\n" + json.dumps(bad) + "\n")
    rows = list(read_export(export, lambda d: parse_event(d, now=AT)))
    problems = [r.describe() for r in rows if isinstance(r, RowProblem)]
    assert problems == quoted


def _snippets() -> list[ast.Module]:
    """docs/sdk.md's Python blocks, parsed as the asyncio REPL would take them."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert blocks
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return [compile(b, "docs/sdk.md", "exec", flags=flags) for b in blocks]


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def test_what_the_doc_says_of_a_repeated_event_id_is_what_a_bulk_export_does(
    tmp_path: Path,
) -> None:
    """A walkthrough: the doc said the file was refused; its first event goes, and the
    repeat is the rejected row the doc now quotes."""
    [quoted] = re.findall(r"`rejected FILE (line \d+: event_id: [^`]+)`", DOC.read_text())
    fam = SyntheticFamilies(seed=3, today=date(2026, 11, 22))
    events = [json.dumps(fam.event(sender="wmp"), default=str) for _ in range(8)]
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join([*events, events[5]]) + "\n")  # line 9 repeats line 6
    rows = list(read_export(export, lambda d: parse_event(d, now=AT)))
    assert [r.line for r in rows if not isinstance(r, RowProblem)] == list(range(1, 9))
    assert [r.describe() for r in rows if isinstance(r, RowProblem)][-1] == quoted


def test_every_name_the_snippets_import_exists() -> None:
    imported = [
        (node.module, alias.name)
        for tree in _snippets()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    ]
    assert ("broker.sdk", "Publisher") in imported
    for module, name in imported:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_each_client_in_the_snippets_is_given_its_own_party_s_keystore() -> None:
    """A keystore holds one party's private keys: another's is refused (KeyStoreError)."""
    owner: dict[str, str] = {}  # variable -> party whose keystore it opened
    clients: list[tuple[str, str]] = []
    for tree in _snippets():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(call := node.value, ast.Call):
                path = call.args[0] if call.args else None
                if (
                    isinstance(call.func, ast.Name) and call.func.id == "FileKeyStore"
                    and isinstance(path, ast.Call) and isinstance(path.func, ast.Attribute)
                    and path.func.attr == "keystore_path" and (party := _text(path.args[0]))
                ):  # fmt: skip
                    owner[ast.unparse(node.targets[0])] = party
            if isinstance(node, ast.Call) and ast.unparse(node.func) in {"Publisher", "Subscriber"}:
                clients.append((_text(node.args[0]) or "?", ast.unparse(node.args[1])))
    assert len(clients) >= 3
    assert [(party, owner.get(keys)) for party, keys in clients] == [(p, p) for p, _ in clients]


def test_each_client_in_the_snippets_is_given_the_settings_envelope() -> None:
    """Left out, a client seals with the default KEM whatever the deployment uses, and one
    configured for x25519 refuses a keystore of its keys."""
    envelopes = {
        ast.unparse(node.targets[0]): ast.unparse(node.value)
        for tree in _snippets()
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
    }
    given = [
        envelopes.get(ast.unparse(kw.value)) if kw else None
        for tree in _snippets()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) in {"Publisher", "Subscriber"}
        for kw in [next((k for k in node.keywords if k.arg == "envelope"), None)]
    ]
    assert len(given) >= 3
    assert set(given) == {"settings.envelope"}


def test_consent_in_the_snippets_is_recorded_by_a_consent_authority_publishing_it() -> None:
    """Only parties of consent-authorities.yaml may write accord.consent, as themselves."""
    authorities = yaml.safe_load((REPO / "policies" / "consent-authorities.yaml").read_text())
    recorded = []
    for tree in _snippets():
        for node in ast.walk(tree):
            if isinstance(node, ast.AsyncWith):
                publisher = node.items[0].context_expr
                if not (
                    isinstance(publisher, ast.Call) and ast.unparse(publisher.func) == "Publisher"
                ):
                    continue
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and ast.unparse(call.func).endswith(
                        ".publish_consent"
                    ):
                        record = ast.literal_eval(call.args[0])
                        recorded.append((_text(publisher.args[0]), record["recorded_by"]))
    assert recorded
    for party, by in recorded:
        assert party == by
        assert by in authorities["consent_authorities"], by


def _programs() -> list[str]:
    """docs/sdk.md's complete programs: the blocks that run themselves (``asyncio.run``)."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    return [b for b in blocks if "asyncio.run(main())" in b]


def _undefined(table: symtable.SymbolTable, defined: set[str]) -> set[str]:
    """Names ``table`` (and the functions in it) read that nothing defines: not a module-level
    name, a builtin, or a local of the function (an enclosing one's is a local there)."""
    module = table.get_type() == "module"  # a StrEnum from Python 3.13
    missing = {
        s.get_name()
        for s in table.get_symbols()
        if s.is_referenced()
        and (not (s.is_assigned() or s.is_imported()) if module else s.is_global())
        and s.get_name() not in defined
    }
    for child in table.get_children():
        missing |= _undefined(child, defined)
    return missing


def test_the_complete_programs_run_as_scripts_and_define_every_name() -> None:
    """A walkthrough: the snippets left names undefined and awaited at the top level. These
    compile as scripts (no top-level await), import what they name (``main`` is not run),
    define everything they use, and the publisher's event is one ``publish`` takes."""
    programs = _programs()
    assert len(programs) == 2
    clients = []
    for source in programs:
        code = compile(source, "docs/sdk.md", "exec")  # no PyCF_ALLOW_TOP_LEVEL_AWAIT
        namespace: dict[str, Any] = {"__name__": "docs_sdk_program"}
        exec(code, namespace)  # noqa: S102  # the doc's own program: imports and definitions
        defined = set(namespace) | set(dir(builtins))
        assert _undefined(symtable.symtable(source, "docs/sdk.md", "exec"), defined) == set()
        assert inspect.iscoroutinefunction(namespace["main"])
        clients.append({"Publisher", "Subscriber"} & set(namespace))
        if "contact_event" in namespace:
            event = parse_event(namespace["contact_event"](), now=datetime.now(UTC))
            assert event.sender == "wmp"
    assert clients == [{"Publisher"}, {"Subscriber"}]


async def test_the_doc_states_the_subscriber_s_real_session_timeout() -> None:
    """What a restart after kill -9 waits for: the consumer's session timeout, which the SDK
    leaves at aiokafka's default."""
    default = inspect.signature(AIOKafkaConsumer).parameters["session_timeout_ms"].default
    consumer = KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="PLAINTEXT")
    made = KafkaClients(consumer).consumer("t", client_id="c", group="g")  # as Subscriber's
    await made.stop()
    assert made._session_timeout_ms == default == 10_000
    text = " ".join(DOC.read_text().split())
    assert "session timeout passes, 10 seconds (aiokafka's `session_timeout_ms`" in text
    assert "Unclosed AIOKafkaProducer" in text
