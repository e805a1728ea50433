"""The gateway's reading of a request body: JSON in UTF-8, within a size, or the ``Refused``
that says what is wrong with it (never quoting what the caller sent)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from broker.events import DUPLICATE_KEY
from broker.gateway._metrics import Outcome


class Refused(Exception):  # a refusal, answered: not a fault
    """A request the gateway answers with an error, before or instead of publishing."""

    def __init__(self, status: int, outcome: Outcome, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message, self.extra = status, outcome, message, extra


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two values for one key: which one counts is the parser's choice, and the records
    # system may have meant the other. Refused rather than guessed.
    out = dict(pairs)
    if len(out) != len(pairs):
        raise Refused(400, Outcome.MALFORMED, DUPLICATE_KEY)
    return out


def _no_constant(_name: str) -> Any:
    raise Refused(400, Outcome.MALFORMED, "the body is not valid JSON (NaN or Infinity)")


def _check_content_type(header: str) -> None:
    """``application/json``, with any parameters (RFC 9110: ``; name=value``, the value
    perhaps quoted); a charset, if given, is utf-8. Unknown parameters are ignored."""
    kind, *params = header.split(";")
    if kind.strip().lower() != "application/json":
        raise Refused(415, Outcome.UNSUPPORTED_TYPE,
                      "send JSON: Content-Type: application/json")  # fmt: skip
    for param in params:
        name, _, value = param.partition("=")
        value = value.strip()
        if len(value) > 1 and value.startswith('"') and value.endswith('"'):
            value = value[1:-1]  # a quoted-string
        if name.strip().lower() == "charset" and value.lower() != "utf-8":
            raise Refused(415, Outcome.UNSUPPORTED_TYPE,
                          "charset must be utf-8 (Content-Type: application/json)")  # fmt: skip


_TOO_DEEP = (
    "the body is nested too deeply: lists or objects within one another past what the "
    "gateway parses (under 1000 levels; an event needs a few)"
)


async def json_body(request: Request, limit: int) -> Any:
    """The request's JSON, read within ``limit`` bytes; ``Refused`` saying what is wrong."""
    _check_content_type(request.headers.get("content-type", ""))
    too_large = Refused(413, Outcome.TOO_LARGE, f"the body is over {limit} bytes")
    length = request.headers.get("content-length")
    if length is not None and not length.isdigit():
        raise Refused(400, Outcome.MALFORMED, "Content-Length is not a number")
    if length is not None and int(length) > limit:
        raise too_large  # before reading any of it
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    try:
        # A byte order mark before the JSON text: RFC 8259 lets a parser ignore it, and some
        # integration engines write one.
        text = b"".join(chunks).decode("utf-8").removeprefix("\ufeff")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise Refused(400, Outcome.MALFORMED, "the body is not UTF-8") from None
    except RecursionError:  # valid JSON perhaps, but deeper than Python's parser goes
        raise Refused(400, Outcome.MALFORMED, _TOO_DEEP) from None
    except ValueError:  # json's own error (whose message quotes nothing, but says where)
        raise Refused(400, Outcome.MALFORMED, "the body is not valid JSON") from None
