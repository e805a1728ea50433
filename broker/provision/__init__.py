"""Provisioning a Kafka cluster for a policy bundle: topics, one login per principal, ACLs.

:func:`provision` reads the cluster as the admin, plans what to add and remove so that every
party and service principal has exactly the access the bundle gives it (the table is in
``_plan``'s docstring and in docs/operations.md), applies the plan, and writes each new
principal's client files. ``accord kafka provision`` is its command line.
"""

from broker.provision._apply import provision
from broker.provision._plan import (
    SERVICE_PRINCIPALS,
    WORKER_GROUP,
    WORKER_TRANSACTIONAL_ID,
    Desired,
    Plan,
    desired_access,
    plan_changes,
    publishers,
    recipients,
)

__all__ = [
    "SERVICE_PRINCIPALS",
    "WORKER_GROUP",
    "WORKER_TRANSACTIONAL_ID",
    "Desired",
    "Plan",
    "desired_access",
    "plan_changes",
    "provision",
    "publishers",
    "recipients",
]
