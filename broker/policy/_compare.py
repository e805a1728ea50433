"""Two bundles compared, agreement by agreement: what changed without a new version.

An agreement's ``version`` is the number decisions cite (``wolverhampton-mash v4 /
mash-to-hubs``), and docs/policy-language.md asks for a new one whenever the text changes:
an agreement changed but still ``v4`` would have the audit log cite ``v4`` for two different
texts. Only a comparison with the bundle before can see that, so ``accord policy impact``
(which has both) asks here; ``accord policy check`` has one bundle and cannot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from broker.policy._model import Agreement, Bundle

__all__ = ["Unversioned", "changed_without_new_version"]

# What an agreement's text is not: its status is where Accord keeps the document's state
# (a draft approved as it stands keeps its version; a suspension changes no clause).
_NOT_TEXT = frozenset({"status"})
# Compared otherwise: the version as decisions cite it (4 and "4" alike), clauses one by one.
_SKIPPED = _NOT_TEXT | {"version", "clauses"}
# A clause's lists the engine reads as sets (broker.policy._index: frozensets, or a tuple
# de-duplicated for routing and candidates): reordered or repeated, they decide the same.
_SETS = frozenset({"from", "to", "event_types", "subjects", "share"})


@dataclass(frozen=True, slots=True)
class Unversioned:
    """An agreement whose content differs between two bundles, its ``version`` the same."""

    agreement: str
    version: str
    #: what differs, as keys (``title``, ``valid_until``) and ``clause <id>``, in file order
    changed: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"agreement": self.agreement, "version": self.version, "changed": list(self.changed)}

    def line(self) -> str:
        """One line naming the agreement, its version and what changed (no event data)."""
        return (
            f"agreement {self.agreement} changed ({', '.join(self.changed)}) but is still "
            f"version {self.version}: decisions would cite v{self.version} for two different "
            "texts; increase its version"
        )


def _canonical(value: Any) -> str:
    """Sorted-key JSON, as the bundle's version hashes it: YAML layout, comments, key order
    and quoting do not count."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _dump(agreement: Agreement) -> dict[str, Any]:
    """The agreement as compared: each clause's set-like lists sorted and de-duplicated."""
    out = agreement.model_dump(mode="json", by_alias=True, exclude_none=True)
    for clause in out["clauses"]:
        for key in _SETS & clause.keys():
            clause[key] = sorted(set(clause[key]))
    return out


def _differences(before: Agreement, after: Agreement) -> tuple[str, ...]:
    was, now = _dump(before), _dump(after)
    out = [
        key
        for key in dict.fromkeys([*was, *now])
        if key not in _SKIPPED and _canonical(was.get(key)) != _canonical(now.get(key))
    ]
    old = {c["id"]: _canonical(c) for c in was["clauses"]}
    new = {c["id"]: _canonical(c) for c in now["clauses"]}
    out += [f"clause {cid}" for cid in dict.fromkeys([*new, *old]) if old.get(cid) != new.get(cid)]
    if not out and list(old) != list(new):
        out.append("clause order")  # the order decisions list their grounds in
    return tuple(out)


def changed_without_new_version(before: Bundle, after: Bundle) -> list[Unversioned]:
    """Every agreement in both bundles, not a draft in both, whose content (all but its
    ``status``; a clause's set-like lists as sets) differs while its ``version`` is the same,
    in ``after``'s order.

    A draft on both sides decides nothing on either, so a draft reworded at its version is
    not warned of. A draft on one side is: an approved agreement turned draft with new text
    would be approved again at the version decisions already cite for the old one, and the
    two steps, each checked alone, would each pass. Only ``before`` and ``after`` are seen: a
    text approved at this version earlier than ``before`` is not."""
    old = {a.id: a for a in before.agreements}
    out = []
    for a in after.agreements:
        was = old.get(a.id)
        if was is None or was.status == a.status == "draft" or str(was.version) != str(a.version):
            continue
        if changed := _differences(was, a):
            out.append(Unversioned(a.id, str(a.version), changed))
    return out
