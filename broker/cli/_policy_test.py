"""``accord policy test``: run scenario files under the bundle they are meant for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from broker.errors import BundleInvalid, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from broker.policy import FlagScenario, Policy, Scenario


def run_tests(paths: list[Path], policies: Path | None, default: Path) -> int:
    """``accord policy test``: the scenarios under ``paths`` run, each PASS or FAIL with its
    differences, and the exit code (1 on any failure, or none found). ``default``: the
    bundle for scenarios that name none (``--policies``, else the project's or the example)."""
    from broker.desk import run_flag_scenario
    from broker.errors import ScenarioInvalid
    from broker.policy import run_scenarios

    for path in paths:
        if (path / "parties.yaml").is_file():
            # Its YAML files are not scenarios: each would fail, which says nothing useful.
            raise UsageError(
                f"{path} is a policy bundle, not scenarios; to run its scenarios under it: "
                f"accord policy test {path / 'scenarios'} --policies {path}"
            )
    # Loaded once here for its line too (a bundle is a few hundred ms to load and check).
    loaded = _refusing_a_bundle_that_does_not_load(policies) if policies is not None else None
    # With --policies the user has said which bundle; without it, asked, not guessed.
    vet = _refusing_another_bundles_scenarios(paths, default) if policies is None else None
    skipped: list[Path] = []
    try:
        results = run_scenarios(
            paths, default, flag_runner=run_flag_scenario, skipped=skipped, vet=vet
        )
    except FileNotFoundError as exc:
        raise UsageError(f"no such file or folder: {exc.filename}") from None
    typer.echo(_bundle_line(default, "for scenarios that name none", loaded))
    named = {default.resolve()}
    passed = failed = 0
    for result in results:
        if isinstance(result, ScenarioInvalid):
            failed += 1
            typer.echo(f"FAIL {result}")
            continue
        where = result.scenario.file
        own = result.scenario.policies
        if own is not None and own not in named:
            named.add(own)
            typer.echo(_bundle_line(own, f"named by {where}"))
        if result.passed:
            passed += 1
            typer.echo(f"PASS {result.scenario.name} ({where})")
        else:
            failed += 1
            typer.echo(f"FAIL {result.scenario.name} ({where})")
            for diff in result.diffs:
                typer.echo(f"     {diff}")
    for file in skipped:
        typer.echo(f"SKIP {file}: holds no scenario")
    n = len(skipped)
    others = f" ({n} YAML file{'s' if n != 1 else ''} with no scenario skipped)" if n else ""
    typer.echo(f"{passed} passed, {failed} failed{others}")
    if not (passed or failed):
        typer.echo(
            "accord: error: no scenario in the paths given: name a scenario file, or a "
            "folder holding them (docs/policy-language.md, section 9)",
            err=True,
        )
        return 1
    return 1 if failed else 0


def _refusing_a_bundle_that_does_not_load(folder: Path) -> Policy:
    """Refuses, before any scenario runs, a --policies bundle that does not load: each of its
    scenarios would fail for that one reason, burying it under a page of FAILs. The bundle,
    when it loads."""
    from broker.policy import Policy

    try:
        return Policy.load(folder)
    except BundleInvalid as exc:
        every = f"; accord policy check {folder} lists each" if len(exc.problems) > 1 else ""
        raise UsageError(f"--policies {folder} does not load: {exc}{every}") from None


def _bundle_line(folder: Path, which: str, loaded: Policy | None = None) -> str:
    """Which bundle scenarios run under, by folder and version: a draft's scenarios run
    under another bundle pass or fail for the wrong reasons, and nothing else would say.
    ``loaded``: the bundle, if loaded already."""
    from broker.policy import Policy

    if loaded is not None:
        return f"policy bundle {folder.resolve()}, version {loaded.version} ({which})"
    try:
        version = Policy.load(folder).version
    except BundleInvalid as exc:
        return f"policy bundle {folder.resolve()} ({which}) does not load: {exc}"
    return f"policy bundle {folder.resolve()}, version {version} ({which})"


def _bundle_around(folder: Path) -> Path | None:
    """The nearest folder that is ``folder`` or holds it and is a policy bundle (holds its
    parties file)."""
    start = folder.resolve()
    for each in (start, *start.parents):
        if any((each / f"parties{ext}").is_file() for ext in (".yaml", ".yml")):
            return each
    return None


def _refusing_another_bundles_scenarios(
    paths: list[Path], default: Path
) -> Callable[[Path, list[Scenario | FlagScenario]], None]:
    """Refuses a scenario file lying in a bundle other than ``default`` that holds a scenario
    naming no bundle: that scenario would run under ``default`` (the one here, or the
    example) and pass or fail for it. Asked, not guessed, as the default is the project's
    bundle wherever the scenarios lie. Decided per file, after reading it: a folder given may
    hold a draft further down, and a scenario naming its own bundle runs under it."""
    home = default.resolve()

    def vet(file: Path, scenarios: list[Scenario | FlagScenario]) -> None:
        if all(s.policies is not None for s in scenarios):
            return
        bundle = _bundle_around(file.parent)
        if bundle is None or bundle == home:
            return
        # The path given that found the file (files are found by joining onto it).
        given = next((p for p in paths if file == p or file.is_relative_to(p)), file)
        # Its scenarios, as the user would type them: the path given if it lies in that
        # bundle, else the file's own folder (a parent given may hold other drafts).
        target = given if given.resolve().is_relative_to(bundle) else file.parent
        shown = bundle if file.is_absolute() else Path(os.path.relpath(bundle))
        raise UsageError(
            f"{file} lies in the bundle {shown}, but its scenarios that name no bundle run "
            f"under {default}: say which, e.g. accord policy test {target} --policies {shown}"
        )

    return vet
