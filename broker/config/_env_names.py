"""Every ``ACCORD_*`` variable in the environment is a setting, or one named here.

pydantic-settings reads ``ACCORD_<SECTION>__<NAME>`` and ``load_settings`` refuses a name a
section lacks (``unknown_setting``), but any other ``ACCORD_*`` variable was passed over:
one underscore where two belong (``ACCORD_CONSOLE_HOST``) or a misspelt section
(``ACCORD_KAFKAA__BOOTSTRAP``) left the default in force without a word, the console on
loopback, the gateway without its token file. ``unknown_variable`` finds such a variable
for ``load_settings``, which refuses it in the same words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel

from broker._words import closest
from broker.config._env_errors import meant, section_names, shown

_PREFIX = "ACCORD_"

#: The ``ACCORD_*`` variables that are no setting, each read on purpose by Accord or its
#: tooling: refusing them would break what reads them. ``ACCORD_HOME`` and
#: ``ACCORD_POLICIES`` are settings (``Settings.home``, ``policies_dir``), which the Makefile,
#: deploy/dev/*.sh, the benchmarks and the tests read too. A new one belongs here
#: (tests/unit/test_config_env_names.py finds every ``ACCORD_`` name the repository holds).
NOT_SETTINGS: dict[str, str] = {
    "ACCORD_KAFKA_BOOTSTRAP": "the flat alias of ACCORD_KAFKA__BOOTSTRAP; the tests' Kafka",
    "ACCORD_AUDIT_DB": "the flat alias of ACCORD_AUDIT__DB",
    "ACCORD_KAFKA_POM": "make kafka-jars: the pom naming Kafka's jars (broker/devkafka)",
    "ACCORD_KEYS_DIR": "the Compose render's host folder of keystores (compose.yaml)",
    "ACCORD_CHROMIUM": "the browser tests' Chromium (tests/browser.py, deploy/dev)",
    "ACCORD_ARTIFACTS": "where the browser tests' screenshots go (tests/browser.py)",
}
#: The tests' own (``ACCORD_TEST_POSTGRES_URL``, tests/postgres.py), and any to come.
TESTS_PREFIX = "ACCORD_TEST_"

# What Kubernetes puts in a pod for each Service (named accord-console: ACCORD_CONSOLE_PORT,
# ACCORD_CONSOLE_SERVICE_HOST, ...) unless enableServiceLinks is false, as the render sets.
_SERVICE_LINK = re.compile(r"_SERVICE_HOST$|_SERVICE_PORT(_[A-Z0-9_]+)?$|_PORT_\d+_(TCP|UDP|SCTP)")


def unknown_variable(environ: Mapping[str, str], settings_cls: type[BaseModel]) -> str | None:
    """The one line refusing an ``ACCORD_*`` variable of ``environ`` that is no setting,
    section, flat alias or variable of ``NOT_SETTINGS``; None when there is none. Its value
    is never said, nor a name that is not plausibly a name (it may be a secret)."""
    top, sections = _top_level(settings_cls)
    unknown = []
    for name in environ:
        upper = name.upper()  # pydantic-settings reads the environment without regard to case
        if not upper.startswith(_PREFIX) or upper in NOT_SETTINGS:
            continue
        rest = upper.removeprefix(_PREFIX)
        if upper.startswith(TESTS_PREFIX) or rest in top:
            continue
        head, separator, _ = rest.partition("__")
        if separator and head in sections:
            continue  # the section's: load_settings refuses a name it lacks (unknown_setting)
        unknown.append(upper)
    if not unknown:
        return None
    # A Service's link variables first: the others Kubernetes adds with them (..._PORT) look
    # like misspellings, and the fix is the pod's, not a name's.
    upper = min(unknown, key=lambda name: (_SERVICE_LINK.search(name) is None, name))
    rest = upper.removeprefix(_PREFIX)
    parts = rest.split("__")
    if shown(parts) != parts:
        return (
            "an ACCORD_* variable is not a setting, its name not repeated (it may hold a "
            "secret): find it with env | grep ^ACCORD_ and unset it"
        )
    if _SERVICE_LINK.search(upper):
        return (
            f"{upper}: not a setting; Kubernetes' variable for a Service named accord-*: "
            "set enableServiceLinks: false on the pod, as Accord's render does"
        )
    guess = _guess(rest, top, sections, settings_cls)
    if guess is not None:
        return f"{upper}: not a setting; did you mean ACCORD_{guess}?"
    names = ", ".join(sorted(set(top) - set(sections)))
    return (
        f"{upper}: not a setting; ACCORD_ takes {names}, and <SECTION>__<NAME> for the "
        f"sections {', '.join(sorted(sections))}"
    )


def _top_level(settings_cls: type[BaseModel]) -> tuple[list[str], list[str]]:
    """The names after ``ACCORD_`` read whole (``HOME``, ``POLICIES``, a section given as
    JSON), and the sections'."""
    top, sections = [], []
    for field, info in settings_cls.model_fields.items():
        alias = info.validation_alias
        top.append(alias.upper().removeprefix(_PREFIX) if isinstance(alias, str) else field.upper())
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            sections.append(field.upper())
    return top, sections


def _guess(
    rest: str, top: list[str], sections: list[str], settings_cls: type[BaseModel]
) -> str | None:
    """The name after ``ACCORD_`` that ``rest`` likely mistypes, or None."""
    settings = [name for name in top if name not in sections]
    for section in sections:
        settings += [
            f"{section}__{n.upper()}" for n in section_names(settings_cls, [section.lower()])
        ]
    # One underscore where two belong (CONSOLE_HOST), or two where one does: the same letters.
    same = [name for name in settings if name.replace("_", "") == rest.replace("_", "")]
    if same:
        return same[0]
    head, separator, tail = rest.partition("__")
    if not separator:
        # One underscore after a section's name (CONSOLE_HOSTS): the section's setting.
        head = next((s for s in sections if rest.startswith(f"{s}_")), "")
        tail = rest.removeprefix(f"{head}_") if head else ""
    if not tail:
        return closest(rest, settings)  # POLICY: POLICIES
    typed = head if head in sections else closest(head, sections)
    field = meant(tail.strip("_"), section_names(settings_cls, [typed.lower()])) if typed else None
    return f"{typed}__{field.upper()}" if field is not None else None
