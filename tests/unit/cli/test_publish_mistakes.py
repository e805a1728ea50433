"""``accord publish`` says a user's mistake once, before anything is read from Kafka: a file
holding one JSON document rather than JSON Lines, and a party (``--as``) the configured bundle
does not name (walkthrough: a .json export gave "not valid JSON" for each of its 60 lines;
``--as wmpp`` was told to make keys for wmpp)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from broker.devkafka import free_port
from broker.synthetic import SyntheticFamilies
from tests.unit.audit.conftest import Run

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    monkeypatch.setenv("ACCORD_POLICIES", str(REPO / "policies"))
    # Nothing listens here: a connection attempt would be an error line of its own.
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    return tmp_path


def _events(n: int) -> list[dict[str, object]]:
    fam = SyntheticFamilies(seed=3)
    return [json.loads(json.dumps(fam.event(sender="wmp"), default=str)) for _ in range(n)]


@pytest.mark.parametrize(
    ("one", "indent"),
    [(False, 2), (False, None), (True, 2)],
    ids=["array", "one-line-array", "object"],
)
def test_a_json_document_is_refused_in_one_line_naming_json_lines(
    one: bool, indent: int | None, home: Path, run_cli: Run
) -> None:
    """A list of events (pretty-printed, or on one line), or one event pretty-printed."""
    events = _events(3)
    path = home / "export.json"
    path.write_text(json.dumps(events[0] if one else events, indent=indent))
    code, out, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert code == 2
    assert out == ""
    assert err.strip() == (
        f"accord: error: {path} is a JSON document, not JSON Lines: one event per line (.jsonl)"
    )


@pytest.mark.parametrize(
    "body",
    [
        '[\n{"event_id":"e1","a":1}\n]\n',
        '[\n  {"event_id":"e1"}\n, {"event_id":"e2"}\n, {"event_id":"e3"}\n]\n',
        '{"event_id": "e1",\n  "kind": "x"\n}\n',
        '\ufeff[{"event_id": "e1"},\n{"event_id": "e2"}]\n\n',
        # Review s43r1: opened with a key on the first line, closed by a line that is no row.
        '{"events": [\n  {"event_id":"e1"},\n  {"event_id":"e2"}\n]}\n',
        '{"event_id": "e1",\n  "subjects": [{"a": 1}]}\n',
    ],
    ids=[
        "event-per-line-in-brackets",
        "comma-first",
        "object-opened-on-its-first-line",
        "bom",
        "events-key-closed-by-brackets",
        "object-closed-on-a-key-line",
    ],
)
def test_a_document_whose_inner_lines_are_events_is_refused_whole_not_published_in_part(
    body: str, home: Path, run_cli: Run
) -> None:
    """Review s42r8: told from its first two lines, the first file was '1 published, 2
    rejected'; its last line closes the document, so nothing is sent."""
    path = home / "export.json"
    path.write_text(body, encoding="utf-8")
    code, out, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert code == 2
    assert out == ""
    assert err.strip() == (
        f"accord: error: {path} is a JSON document, not JSON Lines: one event per line (.jsonl)"
    )


def test_json_lines_and_a_file_that_is_no_json_at_all_are_read_line_by_line(
    home: Path, run_cli: Run
) -> None:
    """Not refused as a document: they go on to the keystore (missing here), as before; so
    does JSON Lines whose first line is a list (a header), one whose first row is cut or
    nested too deep (its last line is a row), and a lone row cut short after a ``}``."""
    rows = "".join(json.dumps(e) + "\n" for e in _events(2))
    for body in [
        rows,
        "{not json\n{nor this\n",
        '["a", "header"]\n' + rows,
        "[{\n" + rows,
        '{"event_id": "e1", "kind\n' + rows,
        '{"event_id": "e1", "x": {"a": 1}\n' + rows,
        "[" * 200_000 + "\n" + rows,
        '{"event_id": "e1", "x": {"a": 1}\n',
        # Review s42r10: one row longer than the 1 MiB read of each end; two broken rows.
        '{"event_id": "e1", "summary": "' + "x" * (1 << 20) + '"}\n',
        '{"event_id": "e1",}\n' + rows + '{"event_id": "e2",}\n',
    ]:
        path = home / "export.jsonl"
        path.write_text(body)
        code, _, err = run_cli(["publish", "--as", "wmp", str(path)])
        assert code != 0
        assert "JSON document" not in err
        assert "no keystore for wmp" in err


def test_a_party_the_bundle_does_not_name_keeps_the_keystore_guidance_with_the_near_miss(
    home: Path, run_cli: Run
) -> None:
    path = home / "export.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n")
    code, _, err = run_cli(["publish", "--as", "wmpp", str(path)])
    assert code == 1
    assert err.startswith("accord: error: no keystore for wmpp at ")
    assert "'accord keys init --party wmpp" in err
    assert err.strip().endswith(
        f"(the bundle {REPO / 'policies'} names no party 'wmpp': did you mean wmp?)"
    )
    assert len(err.strip().splitlines()) == 1


def test_a_bundle_only_found_in_the_folder_is_not_taken_to_say_who_is_a_party(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the repository's folder (its policies/ is the example's), dudley-mash of another
    partnership was refused as unknown."""
    monkeypatch.delenv("ACCORD_POLICIES")
    monkeypatch.chdir(REPO)
    path = home / "export.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n")
    code, _, err = run_cli(["publish", "--as", "dudley-mash", str(path)])
    assert code == 1
    assert err.startswith("accord: error: no keystore for dudley-mash at ")
    assert "names no party" not in err


def test_a_keystore_without_the_partys_key_gets_the_near_miss_too(home: Path, run_cli: Run) -> None:
    code, _, err = run_cli(["keys", "init", "--party", "wmp", "--dir", str(home / "keys")])
    assert code == 0, err
    path = home / "export.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n")
    code, _, err = run_cli(["publish", "--as", "wmpp", str(path)])
    assert code == 1
    assert err.strip() == (
        "accord: error: this keystore holds no private key for wmpp (the bundle "
        f"{REPO / 'policies'} names no party 'wmpp': did you mean wmp?)"
    )


@pytest.mark.parametrize("why", ["no YAML reader", "parties.yaml not UTF-8"])
def test_a_bundle_that_cannot_be_read_here_leaves_the_keystore_guidance_alone(
    why: str, home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK-only install has no PyYAML; either was a traceback."""
    if why == "no YAML reader":
        monkeypatch.setitem(sys.modules, "yaml", None)
    else:
        bundle = home / "bundle"
        bundle.mkdir()
        (bundle / "parties.yaml").write_bytes(b"parties:\n  w\xffp: {}\n")
        monkeypatch.setenv("ACCORD_POLICIES", str(bundle))
    path = home / "export.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n")
    code, _, err = run_cli(["publish", "--as", "wmpp", str(path)])
    assert code == 1
    assert err.startswith("accord: error: no keystore for wmpp at ")
    assert len(err.strip().splitlines()) == 1


def test_keys_init_from_a_parties_yaml_not_utf8_is_one_line(home: Path, run_cli: Run) -> None:
    bundle = home / "bundle"
    bundle.mkdir()
    (bundle / "parties.yaml").write_bytes(b"parties:\n  w\xffp: {}\n")
    code, _, err = run_cli(["keys", "init", "--policies", str(bundle)])
    assert code == 2
    assert err.strip() == f"accord: error: {bundle / 'parties.yaml'}: not UTF-8 text"


def test_a_party_of_the_bundle_without_keys_is_still_told_how_to_make_them(
    home: Path, run_cli: Run
) -> None:
    path = home / "export.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n")
    code, _, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert code == 1
    assert err.startswith("accord: error: no keystore for wmp")
    assert "accord keys init --party wmp" in err


def test_a_document_nested_too_deep_to_parse_is_one_line_not_a_traceback(
    home: Path, run_cli: Run
) -> None:
    path = home / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    code, _, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert code == 2
    assert err.strip() == (
        f"accord: error: {path} is a JSON document, not JSON Lines: one event per line (.jsonl)"
    )


def test_a_large_document_is_refused_from_its_first_lines_not_parsed_whole(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 64 MB export took 3 s and 230 MB to be refused."""
    from broker.cli import _publish

    parsed: list[int] = []
    loads = json.loads

    def counting(text: str) -> object:
        parsed.append(len(text))
        return loads(text)

    monkeypatch.setattr(_publish.json, "loads", counting)
    events = _events(3) * 2000
    for indent in (2, None):
        path = home / "export.json"
        path.write_text(json.dumps(events, indent=indent))
        assert path.stat().st_size > _publish._LINE_AT_MOST
        code, _, err = run_cli(["publish", "--as", "wmp", str(path)])
        assert code == 2
        assert "is a JSON document, not JSON Lines" in err
    assert parsed == [] or max(parsed) < _publish._LINE_AT_MOST
