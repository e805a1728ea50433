"""Which ``ACCORD_*`` variable pydantic-settings could not read, for a one-line error.

pydantic-settings parses a list or section setting given in the environment as JSON, and
when that fails says only which top-level field it was reading ("error parsing value for
field "schools""), not which variable. ``unreadable_json`` finds the variable again, so the
message can name it and say what it takes; never its value, which may be a secret.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from broker._words import closest
from broker.config._secret_files import secret_fields

_FIELD = re.compile(r'field "([A-Za-z0-9_]+)"')
_LISTS = (list, tuple, set, frozenset)


def unreadable_json(
    message: str, settings_cls: type[BaseModel], environ: Mapping[str, str]
) -> str | None:
    """``NAME: what it takes`` for the variable behind pydantic-settings' ``message``, or None
    when no variable of that field is a list or section setting that is not JSON."""
    found = _FIELD.search(message)
    field = settings_cls.model_fields.get(found.group(1)) if found else None
    if found is None or field is None:
        return None
    prefix = f"ACCORD_{found.group(1).upper()}"
    for name in sorted(environ):
        upper = name.upper()  # the environment is read without regard to case
        if upper != prefix and not upper.startswith(f"{prefix}__"):
            continue
        path = [part for part in upper[len(prefix) :].lower().split("__") if part]
        annotation = _annotation_at(field.annotation, path)
        expected = _expected(annotation)
        if expected is None:
            continue
        try:
            json.loads(environ[name])
        except ValueError:
            return f"{upper}: not JSON; give {expected}"
    return None


_CLIENT_FILE = frozenset(
    ("kafka", name) for name in ("client_file", "client_files", "client_conf", "client_config")
)


#: A key that could be a setting's name. A key of a section given as JSON (ACCORD_KAFKA='{..}')
#: or a variable's name is typed input that may hold a secret by mistake (a password pasted
#: as a key): anything else is not repeated in a message.
_PLAUSIBLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


def shown(loc: list[str]) -> list[str]:
    """``loc`` up to its first key that is not plausibly a name, which is not to be echoed."""
    for at, part in enumerate(loc):
        if not _PLAUSIBLE.fullmatch(part):
            return loc[:at]
    return loc


def section_names(settings_cls: type[BaseModel], loc: list[str]) -> list[str]:
    """What the section at ``loc`` takes, lower case and sorted: its settings, and a secret's
    ``<NAME>_FILE`` (``load_settings`` reads those for a section of ``settings_cls``)."""
    model = _bare(_annotation_at(settings_cls.model_fields[loc[0]].annotation, loc[1:]))
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    files = secret_fields(settings_cls).get(loc[0], []) if len(loc) == 1 else []
    return sorted([*model.model_fields, *(f"{name}_file" for name in files)])


def meant(typed: str, names: list[str]) -> str | None:
    """The name of ``names`` that ``typed`` likely mistypes; its ``_file`` form when ``typed``
    says FILE and there is one (PASSPHRASEFILE is the file's, not the secret in the
    environment that PASSPHRASE would be)."""
    close = closest(typed.lower(), names)
    if close is not None and "file" in typed.lower() and f"{close}_file" in names:
        return f"{close}_file"
    return close


def named_by_variables(loc: list[str], environ: Mapping[str, str]) -> list[str]:
    """The part of ``loc`` a variable's own name spells (ACCORD_KAFKA__BOOTSTRAPP); what
    follows came from inside a value (ACCORD_KAFKA='{"...": 1}'), and a value may be a secret
    pasted in the wrong place, however much it looks like a name. ``loc`` whole when no
    variable spells any of it (a file's or the command line's: our own names)."""
    names = {name.upper() for name in environ}
    for n in range(len(loc), 0, -1):
        if "ACCORD_" + "__".join(loc[:n]).upper() in names:
            return loc[:n]
    return loc


def unknown_setting(
    loc: list[str], settings_cls: type[BaseModel], *, from_value: bool = False
) -> str:
    """What to say of ``ACCORD_<loc>``, a name no section has ("Extra inputs are not
    permitted" says nothing): the setting it likely mistypes, or the section's settings.
    ``from_value``: its last key came from inside a JSON value, so it is not repeated."""
    fields = section_names(settings_cls, loc[:-1])
    section = "__".join(part.upper() for part in loc[:-1])
    if from_value or shown(loc) != loc:
        close = meant(loc[-1], fields)
        if close is not None:
            return (
                "an unknown key (not repeated: it may be a secret); did you mean "
                f"ACCORD_{section}__{close.upper()}?"
            )
        names = ", ".join(name.upper() for name in fields)
        return (
            f"an unknown key (not repeated: it may be a secret); ACCORD_{section}__ takes {names}"
        )
    if tuple(loc) in _CLIENT_FILE:
        # The docs' "client file" is a file in a folder, not a setting: spelling would guess
        # CLIENT_ID, which is something else.
        return (
            "not a setting; a login's client file is <principal>.librdkafka.conf in the folder "
            "ACCORD_KAFKA__CREDENTIALS_DIR names"
        )
    close = meant(loc[-1], fields)
    if close is not None:
        return f"not a setting; did you mean ACCORD_{section}__{close.upper()}?"
    names = ", ".join(name.upper() for name in fields)
    return f"not a setting; ACCORD_{section}__ takes {names}"


def _annotation_at(annotation: Any, path: list[str]) -> Any:
    for part in path:
        model = _bare(annotation)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
    return annotation


def _bare(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _expected(annotation: Any) -> str | None:
    """What a setting of this type takes as JSON; None where pydantic-settings does not insist
    on JSON (a plain value, or a union it falls back from, such as an optional list)."""
    bare = _bare(annotation)
    origin = get_origin(bare)
    if origin is Union or origin is types.UnionType:
        return None
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "a JSON object of its settings"
    if origin is dict:
        return "a JSON object"
    if origin in _LISTS:
        if date in get_args(bare):
            return """a JSON list of dates, e.g. '["2026-12-08"]'"""
        return "a JSON list"
    return None
