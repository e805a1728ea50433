"""The flag services' alert rules, one set per co-ordinating team whose flag service a render
runs (``accord deploy render --desk TEAM``), appended to the shipped ``alerts.yml``.

Per party, not one rule over ``job=~"accord-flags-.+"``: ``absent()`` can only miss a job it
names, and a service that was never deployed, or that a scrape configuration lost, is
exactly what must be noticed. With Kafka away a flag service stays alive and ready (a
restart would not bring Kafka back), so its progress gauge, not its probes, is what says
that no record is being checked against the rules (``broker.desk._flags_counts``).
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.deploy._model import Deployment

__all__ = ["FLAGS_GROUP", "flag_rules_text", "flag_service_parties"]

FLAGS_GROUP = "accord-flag-services"

# Each rule's job is one the scrape configs give the process (Compose's prometheus.yml and
# each ServiceMonitor: ``accord-<process name>``, the process being ``flags-<party>``). The
# ``party`` label tells one team's rules from another's (promtool refuses duplicates), and
# lets Alertmanager route a team's alerts to the team.
_RULES = """\
      - alert: AccordFlagsNotReading
        expr: |
          time() - accord_desk_flags_progress_timestamp_seconds{{job="{job}"}} > 300
          or
          (absent(accord_desk_flags_progress_timestamp_seconds{{job="{job}"}})
           and on () up{{job="{job}"}} == 1)
        for: 2m
        labels:
          severity: warning
          party: {party}
        annotations:
          summary: "{{{{ $labels.job }}}} has not committed its reading for over 5 minutes"
          description: >-
            {{{{ $labels.job }}}} answers its scrape but has not committed its reading of the
            team's delivery topic for over 5 minutes (or never has since it started): new
            records are not being checked against the flag rules, so no family is flagged.
            It commits at least once a minute while it has read everything. Check Kafka, the
            team's Kafka login and grants, and the service's log.

      - alert: AccordFlagsRecordFailed
        expr: sum by (job, step) (increase(accord_desk_flags_failed_total{{job="{job}"}}[15m])) > 0
        for: 0m
        labels:
          severity: warning
          party: {party}
        annotations:
          summary: "{{{{ $labels.job }}}}'s {{{{ $labels.step }}}} step passed over records"
          description: >-
            {{{{ $value }}}} message(s) in 15 minutes that {{{{ $labels.job }}}}'s
            {{{{ $labels.step }}}} step could not work on were passed over: those records were
            never counted towards a flag. The log's flags_record_failed lines name each one's
            partition and offset, to read again once the cause is fixed (docs/desk.md).

      - alert: AccordFlagsRuleFailed
        expr: |
          sum by (job, rule) (increase(accord_desk_flags_rule_failed_total{{job="{job}"}}[15m]))
          > 0
        for: 0m
        labels:
          severity: warning
          party: {party}
        annotations:
          summary: "{{{{ $labels.job }}}}'s flag rule {{{{ $labels.rule }}}} fails at runtime"
          description: >-
            The flag rule {{{{ $labels.rule }}}} failed {{{{ $value }}}} time(s) in 15 minutes
            ({{{{ $labels.job }}}}'s log: flags_rule_failed): where it fails it does not fire,
            so children it should flag are not flagged. Guard its condition and deploy the
            bundle again (docs/policy-language.md, section 12).

      - alert: AccordFlagsAbsent
        expr: absent(up{{job="{job}"}})
        for: 10m
        labels:
          severity: warning
          party: {party}
        annotations:
          summary: "No {job} is being scraped at all"
          description: >-
            Prometheus has no target for the job {job}: the team's flag service is not
            deployed, or the scrape configuration lost it. Without it no family is flagged.
"""


def flag_service_parties(dep: Deployment) -> tuple[str, ...]:
    """The parties whose flag service ``dep`` runs, sorted."""
    return tuple(
        sorted(p.party for p in dep.desk_processes if p.party and p.args[:2] == ("desk", "flags"))
    )


def flag_rules_text(parties: Sequence[str]) -> str:
    """The ``accord-flag-services`` group, in ``alerts.yml``'s own layout, to append to its
    ``groups``; empty without parties. Party ids are checked names (``_model._NAME``): they
    need no quoting in YAML or PromQL."""
    if not parties:
        return ""
    rules = "\n".join(
        _RULES.format(job=f"accord-flags-{party}", party=party) for party in sorted(parties)
    )
    return f"\n  - name: {FLAGS_GROUP}\n    rules:\n{rules}"
