"""The policy engine: information-sharing agreements, consent and restrictions, decided.

Load a bundle folder once (``load_bundle``: every problem reported with file and line),
then ``policy.decide(event, consents, at=...)`` gives one ``Decision`` per candidate
recipient, and ``redact(event, decision)`` builds what that recipient may see. Pure: no
Kafka, no clock, no I/O in ``decide``.
"""

from broker.policy._authority import ConsentRefusal
from broker.policy._basis_words import BASIS_LABELS, basis_words
from broker.policy._compare import Unversioned, changed_without_new_version
from broker.policy._dated import dated_notes, inactive_reason
from broker.policy._decide import consent_subjects
from broker.policy._decision import (
    REASON_PRECEDENCE,
    ClauseRef,
    Decision,
    Outcome,
    Reason,
    SubjectScope,
)
from broker.policy._encompass import encompass_deadline, is_late
from broker.policy._explain import (
    NoHub,
    Unevaluated,
    no_candidates,
    no_hub,
    unevaluated_conditions,
)
from broker.policy._flag_scenario import ExpectedFlag, FlagScenario
from broker.policy._flags import (
    FLAG_VARIABLES,
    HOUSEHOLD_AGGREGATES,
    CompiledFlagRule,
    FlagRule,
)
from broker.policy._layout import bundle_files
from broker.policy._model import (
    ARTICLE6_BASES,
    PARTY_KINDS,
    SELECTORS,
    SPECIAL_BASES,
    TRANSFORMS,
    Agreement,
    Bundle,
    Clause,
    LawfulBasis,
    Party,
    Restriction,
)
from broker.policy._policy import Policy, load_bundle
from broker.policy._redact import redact
from broker.policy._scenario import (
    Scenario,
    ScenarioResult,
    load_scenarios,
    run_scenario,
    run_scenarios,
)

__all__ = [
    "ARTICLE6_BASES",
    "BASIS_LABELS",
    "FLAG_VARIABLES",
    "HOUSEHOLD_AGGREGATES",
    "PARTY_KINDS",
    "REASON_PRECEDENCE",
    "SELECTORS",
    "SPECIAL_BASES",
    "TRANSFORMS",
    "Agreement",
    "Bundle",
    "Clause",
    "ClauseRef",
    "CompiledFlagRule",
    "ConsentRefusal",
    "Decision",
    "ExpectedFlag",
    "FlagRule",
    "FlagScenario",
    "LawfulBasis",
    "NoHub",
    "Outcome",
    "Party",
    "Policy",
    "Reason",
    "Restriction",
    "Scenario",
    "ScenarioResult",
    "SubjectScope",
    "Unevaluated",
    "Unversioned",
    "basis_words",
    "bundle_files",
    "changed_without_new_version",
    "consent_subjects",
    "dated_notes",
    "encompass_deadline",
    "inactive_reason",
    "is_late",
    "load_bundle",
    "load_scenarios",
    "no_candidates",
    "no_hub",
    "redact",
    "run_scenario",
    "run_scenarios",
    "unevaluated_conditions",
]
