"""Policy scenarios (docs/policy-language.md §9): an event, consents and a time in; expected
decisions out.

A file holds one scenario or a list (anchors and merge keys work). ``policies`` is relative
to the file; without it the runner's default bundle is used. Every difference between the
expectation and the decision is reported precisely, one line each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from broker.errors import AccordError, BundleInvalid, ScenarioInvalid
from broker.events import FIELD_PATHS, parse_consents, parse_event
from broker.policy._decision import Decision, Outcome, Reason
from broker.policy._flag_scenario import FlagRunner, FlagScenario, parse_flag_scenario
from broker.policy._model import TRANSFORMS
from broker.policy._policy import Policy
from broker.policy._redact import redact
from broker.policy._wording import plain_message
from broker.policy._yaml import YamlProblem, read_yaml

__all__ = [
    "SCENARIO_PSEUDONYM_KEY",
    "Expectation",
    "Scenario",
    "ScenarioResult",
    "collect_files",
    "load_scenarios",
    "run_scenario",
    "run_scenarios",
]

# Scenarios are tests: a fixed, public key keeps pseudonyms reproducible. Never a real key.
SCENARIO_PSEUDONYM_KEY = b"accord-scenario-pseudonym-key-not-secret"
_AT = TypeAdapter(AwareDatetime)
_VIEW_KEYS = {
    "subject.name": ("given_name", "family_name", "initials", "name_pseudonym"),
    "subject.dob": ("dob", "age_band", "year_of_birth", "dob_pseudonym"),
    "subject.postcode": ("postcode", "postcode_district", "postcode_pseudonym"),
}


class Expectation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Outcome
    reason: Reason | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    article9: str | None = None
    transform: dict[str, str] = {}
    subjects: int | None = None

    # A misspelt path would never be shared, so an 'exclude' of it would always pass.
    @field_validator("include", "exclude")
    @classmethod
    def _known_paths(cls, paths: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        for path in paths:
            if path not in FIELD_PATHS:
                raise ValueError(
                    f"{path!r} is not a field path "
                    "(docs/policy-language.md §3, 'Fields you can share')"
                )
            if info.field_name == "exclude" and path in _ALWAYS:
                raise ValueError(f"{path} always travels with a share: it cannot be excluded")
        return paths

    @field_validator("transform")
    @classmethod
    def _known_transforms(cls, transform: dict[str, str]) -> dict[str, str]:
        for path, kind in transform.items():
            if path not in FIELD_PATHS or kind not in TRANSFORMS:
                raise ValueError(f"{path}: {kind} is not a field path and a transform")
        return transform


@dataclass(frozen=True)
class Scenario:
    name: str
    file: Path
    position: int
    at: datetime
    policies: Path | None
    event: Any
    consents: tuple[Any, ...]
    expect: dict[str, Expectation]
    absent: tuple[str, ...]
    # Consents (by 1-based position) the bundle must refuse, with why; None: not checked.
    refused: dict[int, str] | None = None


@dataclass
class ScenarioResult:
    scenario: Scenario | FlagScenario
    diffs: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.diffs


def _any_scenario(raw: Any, file: Path, position: int) -> Scenario | FlagScenario:
    if isinstance(raw, dict) and "flag_events" in raw:
        return parse_flag_scenario(raw, file, position)
    return _scenario(raw, file, position)


def _scenario(raw: Any, file: Path, position: int) -> Scenario:
    where = f"{file}: scenario {position + 1}"
    if not isinstance(raw, dict):
        raise ScenarioInvalid(f"{where}: expected a mapping")
    unknown = set(raw) - {"name", "at", "policies", "consents", "event", "expect", "description",
                          "refused_consents"}  # fmt: skip
    if unknown:
        raise ScenarioInvalid(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioInvalid(f"{where}: needs a name")
    where = f"{file}: {name!r}"
    try:
        at = _AT.validate_python(raw.get("at"))
    except ValidationError:
        raise ScenarioInvalid(f"{where}: 'at' must be a date-time with a timezone") from None
    if not isinstance(raw.get("event"), dict):
        raise ScenarioInvalid(f"{where}: needs an event (a mapping)")
    consents = raw.get("consents") or []
    if not isinstance(consents, list):
        raise ScenarioInvalid(f"{where}: 'consents' must be a list")
    expect_raw = raw.get("expect")
    if not isinstance(expect_raw, dict) or not expect_raw:
        raise ScenarioInvalid(f"{where}: needs 'expect' (party id → expectation)")
    absent = expect_raw.get("absent") or []
    if not isinstance(absent, list) or not all(isinstance(a, str) for a in absent):
        raise ScenarioInvalid(f"{where}: 'expect.absent' must be a list of party ids")
    expect: dict[str, Expectation] = {}
    for party, body in expect_raw.items():
        if party == "absent":
            continue
        try:
            expect[str(party)] = Expectation.model_validate(body)
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"])
            message = plain_message(err, Expectation)
            raise ScenarioInvalid(f"{where}: expect.{party}.{loc}: {message}") from None
    policies = raw.get("policies")
    if policies is not None and not isinstance(policies, str):
        raise ScenarioInvalid(f"{where}: 'policies' must be a folder path")
    return Scenario(
        name=name,
        file=file,
        position=position,
        at=at,
        policies=(file.parent / policies).resolve() if policies else None,
        event=raw["event"],
        consents=tuple(consents),
        expect=expect,
        absent=tuple(absent),
        refused=_refused(raw.get("refused_consents"), len(consents), where),
    )


def _refused(raw: Any, count: int, where: str) -> dict[int, str] | None:
    """``refused_consents: [{consent: N, reason: R}]``, N a position in ``consents`` (from 1)."""
    if raw is None:
        return None
    problem = (
        f"{where}: 'refused_consents' must list {{consent: N, reason: R}}, N from 1 to {count}"
    )
    if not isinstance(raw, list):
        raise ScenarioInvalid(problem)
    out: dict[int, str] = {}
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"consent", "reason"}:
            raise ScenarioInvalid(problem)
        n, reason = item["consent"], item["reason"]
        if not isinstance(n, int) or not 1 <= n <= count or not isinstance(reason, str):
            raise ScenarioInvalid(problem)
        out[n] = reason
    return out


def load_scenarios(file: Path) -> list[Scenario | FlagScenario]:
    """The scenarios in one YAML file; ``ScenarioInvalid`` says what is wrong and where."""
    return _parse_items(file, _read_items(file))


def _read_items(file: Path) -> list[Any]:
    try:
        doc = read_yaml(file, str(file))
    except YamlProblem as exc:
        raise ScenarioInvalid(str(exc)) from None
    if doc.duplicates:
        # The reader keeps the last: an earlier expectation would be dropped, unseen.
        raise ScenarioInvalid(f"{doc.where(doc.duplicates[0])}: duplicate key")
    data = doc.data
    return data if isinstance(data, list) else [data]


def _parse_items(file: Path, items: list[Any]) -> list[Scenario | FlagScenario]:
    return [_any_scenario(item, file, i) for i, item in enumerate(items)]


# A scenario has a name and an event or flag events: a mapping with none of these is some
# other program's YAML (an alerting rule, a CI file), not a scenario gone wrong.
_SCENARIO_KEYS: Final = frozenset({"name", "event", "expect", "flag_events", "expect_flags"})


def _holds_no_scenario(items: list[Any]) -> bool:
    return not any(isinstance(item, dict) and _SCENARIO_KEYS & set(item) for item in items)


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """Scenario files named directly, and every ``*.yaml``/``*.yml`` under named folders but a
    policy bundle's own files: a folder of examples keeps its bundle beside its scenarios, and
    a bundle (a folder holding ``parties.yaml``) keeps its scenarios in a folder of its own.
    Linked and hidden folders are not followed (a link back up would walk the tree again; a
    ``.venv`` holds other programs' YAML)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(_scenario_files(path)))
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(2, "No such file or directory", str(path))
    return out


def _scenario_files(folder: Path) -> Iterator[Path]:
    bundle = any((folder / f"parties{suffix}").is_file() for suffix in (".yaml", ".yml"))
    for entry in folder.iterdir():
        if entry.is_dir():
            hidden = entry.is_symlink() or entry.name.startswith(".")
            if not hidden and not (bundle and entry.name == "agreements"):
                yield from _scenario_files(entry)
        elif not bundle and entry.suffix in {".yaml", ".yml"} and entry.is_file():
            yield entry


_ALWAYS = frozenset({"event.type", "event.occurred_at"})


def _in_view(view: dict[str, Any], path: str) -> bool:
    if path in _ALWAYS:
        return True
    if path.startswith("event."):
        key = path.removeprefix("event.")
        return key in view or f"{key}_pseudonym" in view
    keys = _VIEW_KEYS.get(path)
    if keys is None:
        key = path.removeprefix("subject.")
        keys = (key, f"{key}_pseudonym")
    return any(k in s for s in view.get("subjects", ()) for k in keys)


def _compare(party: str, exp: Expectation, d: Decision, view: dict[str, Any] | None) -> list[str]:
    diffs: list[str] = []
    got = f"{d.outcome} ({d.reason})" if d.reason else d.outcome
    if d.outcome != exp.outcome:
        diffs.append(f"{party}: outcome: expected {exp.outcome}, got {got}")
    if exp.reason is not None and d.reason != exp.reason:
        diffs.append(
            f"{party}: reason: expected {exp.reason}, got {d.reason or 'none'} ({d.outcome})"
        )
    diffs.extend(_compare_fields(party, exp, d, view))
    if exp.article9 is not None:
        got9 = d.lawful_basis.article9 if d.lawful_basis else None
        if got9 != exp.article9:
            diffs.append(f"{party}: article9: expected {exp.article9}, got {got9}")
    for path, kind in exp.transform.items():
        if (got_kind := d.transforms.get(path)) != kind:
            diffs.append(f"{party}: transform {path}: expected {kind}, got {got_kind}")
    if exp.subjects is not None and (people := _people(view)) != exp.subjects:
        diffs.append(f"{party}: subjects: expected {exp.subjects}, got {people}")
    return diffs


def _people(view: dict[str, Any] | None) -> int:
    """The people in the view: a decision's subjects may be all the event's people while
    its clauses share nothing about any of them (only event fields), and an entry with
    nothing in it shows no one."""
    if view is None:
        return 0
    return sum(1 for s in view.get("subjects", ()) if s)


def _compare_fields(
    party: str, exp: Expectation, d: Decision, view: dict[str, Any] | None
) -> list[str]:
    diffs: list[str] = []
    for path in exp.include:
        if path not in d.fields_shared:
            extra = " (withheld by a restriction)" if path in d.fields_withheld else ""
            diffs.append(f"{party}: include {path}: not shared{extra}")
        elif view is not None and not _in_view(view, path):
            diffs.append(f"{party}: include {path}: shared but missing from the redacted view")
    for path in exp.exclude:
        if path in d.fields_shared:
            diffs.append(f"{party}: exclude {path}: shared under {', '.join(d.clause_ids)}")
        elif view is not None and path not in _ALWAYS and _in_view(view, path):
            diffs.append(f"{party}: exclude {path}: present in the redacted view")
    return diffs


def run_scenario(
    scenario: Scenario,
    policy_for: Callable[[Path | None], Policy],
    *,
    pseudonym_key: bytes = SCENARIO_PSEUDONYM_KEY,
) -> ScenarioResult:
    """Decide the scenario's event and compare every expectation."""
    result = ScenarioResult(scenario)
    try:
        policy = policy_for(scenario.policies)
        event = parse_event(scenario.event, now=scenario.at)
        consents = parse_consents(scenario.consents, now=None)
    except BundleInvalid as exc:
        result.diffs.append(f"policy bundle invalid: {exc}")
        return result
    except AccordError as exc:
        result.diffs.append(f"{type(exc).__name__}: {exc}")
        return result
    # As the worker takes them on arrival: one it refuses is never filed, so never decided on.
    refusals = {n: policy.refusal_on_arrival(c) for n, c in enumerate(consents, start=1)}
    if scenario.refused is not None:
        for n, arrival in refusals.items():
            refusal, want = arrival[0] if arrival else None, scenario.refused.get(n)
            if refusal != want:
                result.diffs.append(
                    f"consent {n}: expected {f'refused ({want})' if want else 'to count'}, "
                    f"got {f'refused ({refusal})' if refusal else 'counted'}"
                )
    filed = [policy.filed_on_arrival(c) for n, c in enumerate(consents, start=1)
             if refusals[n] is None]  # fmt: skip
    decisions = policy.decide(event, filed, at=scenario.at)
    result.decisions = decisions
    by_party = {d.recipient: d for d in decisions}
    for party, exp in scenario.expect.items():
        if party not in policy.bundle.parties:
            result.diffs.append(f"{party}: not a party in the bundle")
            continue
        d = by_party.get(party)
        if d is None:
            result.diffs.append(
                f"{party}: expected {exp.outcome}, got no decision (not a candidate)"
            )
            continue
        view = redact(event, d, pseudonym_key=pseudonym_key) if d.shares else None
        result.diffs.extend(_compare(party, exp, d, view))
    for party in scenario.absent:
        if party not in policy.bundle.parties:  # else a misspelt party always passes
            result.diffs.append(f"{party}: not a party in the bundle")
        elif (d := by_party.get(party)) is not None:
            got = f"{d.outcome} ({d.reason})" if d.reason else d.outcome
            result.diffs.append(f"{party}: expected no decision, got {got}")
    return result


class PolicyCache:
    """Loads each bundle folder once; remembers a broken bundle's error too."""

    def __init__(self, default: Path | None) -> None:
        self.default = default
        self._loaded: dict[Path, Policy | BundleInvalid] = {}

    def __call__(self, path: Path | None) -> Policy:
        target = path or self.default
        if target is None:
            raise ScenarioInvalid("the scenario names no policies and no default bundle is set")
        target = target.resolve()
        if target not in self._loaded:
            try:
                self._loaded[target] = Policy.load(target)
            except BundleInvalid as exc:
                self._loaded[target] = exc
        found = self._loaded[target]
        if isinstance(found, BundleInvalid):
            raise found
        return found


def run_scenarios(
    paths: Iterable[Path],
    default_policies: Path | None,
    *,
    flag_runner: FlagRunner | None = None,
    skipped: list[Path] | None = None,
    vet: Callable[[Path, list[Scenario | FlagScenario]], None] | None = None,
) -> Iterator[ScenarioResult | ScenarioInvalid]:
    """Run every scenario in the files named and the folders' ``*.yaml``; an unreadable file
    yields its ``ScenarioInvalid``. A path that does not exist raises ``FileNotFoundError``
    at once, before any scenario runs. Flag scenarios run with ``flag_runner`` (the desk's
    ``run_flag_scenario``); without one each fails saying so.

    A file found in a folder whose YAML holds nothing a scenario has (no ``name``, ``event``,
    ``expect``, ``flag_events`` or ``expect_flags`` anywhere) is not run, and is appended to
    ``skipped``; a file named directly is always read as scenarios.

    Every file is read before any scenario runs, and ``vet`` is given each readable file's
    scenarios then: what it raises, this raises, with nothing run."""
    paths = list(paths)
    named = {p for p in paths if p.is_file()}
    read = _read_files(collect_files(paths), named, skipped)
    if vet is not None:
        for file, found in read:
            if not isinstance(found, ScenarioInvalid):
                vet(file, found)
    return _run_files(read, default_policies, flag_runner)


def _read_files(
    files: list[Path], named: set[Path], skipped: list[Path] | None
) -> list[tuple[Path, list[Scenario | FlagScenario] | ScenarioInvalid]]:
    out: list[tuple[Path, list[Scenario | FlagScenario] | ScenarioInvalid]] = []
    for file in files:
        try:
            items = _read_items(file)
            if file not in named and _holds_no_scenario(items):
                if skipped is not None:
                    skipped.append(file)
                continue
            out.append((file, _parse_items(file, items)))
        except ScenarioInvalid as exc:
            out.append((file, exc))
    return out


def _run_files(
    read: list[tuple[Path, list[Scenario | FlagScenario] | ScenarioInvalid]],
    default_policies: Path | None,
    flag_runner: FlagRunner | None,
) -> Iterator[ScenarioResult | ScenarioInvalid]:
    cache = PolicyCache(default_policies)
    for _, scenarios in read:
        if isinstance(scenarios, ScenarioInvalid):
            yield scenarios
            continue
        for scenario in scenarios:
            if isinstance(scenario, FlagScenario):
                result = ScenarioResult(scenario)
                if flag_runner is None:
                    result.diffs.append("a flag scenario: run it with the desk's flag engine")
                else:
                    result.diffs.extend(flag_runner(scenario, cache))
                yield result
            else:
                yield run_scenario(scenario, cache)
