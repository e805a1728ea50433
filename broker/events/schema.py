"""JSON Schema for every payload on the wire, generated from the pydantic models.

``python -m broker.events.schema [DIR]`` writes ``contact-event.v1.json``,
``consent-record.v1.json``, ``access-ack.v1.json``, ``shared-record.v1.json`` and
``consent-withdrawn-notice.v1.json`` into ``DIR`` (default: ``schemas/``); a unit test checks
that the checked-in files equal what the models generate. The schemas describe the shape;
checks that JSON Schema cannot express (the NHS number's check digit, dates not in the
future, an integer written as 3.0) are named in the senders' schemas' descriptions;
everything else it can say, it says (a name of spaces only, refused once stripped, fails the
names' pattern).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from broker.events._consent import ConsentRecord
from broker.events._messages import AccessAck, Delivery, WithdrawalNotice
from broker.events._model import ContactEvent

__all__ = ["SCHEMA_FILES", "main", "render", "schemas"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_EXTRA_CHECKS = (
    "Also checked beyond this schema: NHS numbers have a valid modulus-11 check digit; "
    "postcodes have the shape of a UK postcode; dates are not in the future (5 minutes' "
    "clock skew allowed), and a subject's date of birth is not after the event's occurred_at "
    "(a consent record's recorded_at); each subject has an NHS number or a given and family "
    "name; a contact event's need_level is written without a fraction (3, not 3.0, which "
    "JSON Schema counts as an integer)."
)

SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "contact-event.v1.json": ContactEvent,
    "consent-record.v1.json": ConsentRecord,
    "access-ack.v1.json": AccessAck,
    "shared-record.v1.json": Delivery,
    "consent-withdrawn-notice.v1.json": WithdrawalNotice,
}
# What senders write, and what the broker checks beyond the schema.
_CHECKED_BEYOND = {"contact-event.v1.json", "consent-record.v1.json"}


def schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema document."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in SCHEMA_FILES.items():
        doc = model.model_json_schema(mode="validation")
        doc = {"$schema": _DIALECT, **doc}
        about = " ".join((model.__doc__ or "").split())
        doc["description"] = f"{about} {_EXTRA_CHECKS}" if name in _CHECKED_BEYOND else about
        out[name] = doc
    return out


def render(doc: dict[str, Any]) -> str:
    """Stable text form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else Path("schemas")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, doc in schemas().items():
        (out_dir / name).write_text(render(doc), encoding="utf-8")
        print(f"wrote {out_dir / name}")  # noqa: T201  # a generator script reports what it wrote
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
