"""Settings, read once at an entry point (the CLI) and passed down explicitly.

Every model is frozen; every secret is a ``SecretStr``; modes are enums whose default is the
safe choice. Environment variables use the ``ACCORD_`` prefix, nested with ``__``
(``ACCORD_KAFKA__BOOTSTRAP``); a few flat aliases that users type often
(``ACCORD_HOME``, ``ACCORD_KAFKA_BOOTSTRAP``, ``ACCORD_AUDIT_DB``) are honoured too. Any
other ``ACCORD_*`` variable is refused with the setting it likely misspells, unless
``_env_names.NOT_SETTINGS`` lists it (read on purpose by Accord's tooling).
"""

from broker.config._base import Network, OpsEndpoint
from broker.config._gateway import GatewaySettings
from broker.config._secret_files import read_secret_file
from broker.config._settings import (
    DEMO_PASSPHRASE_FILE,
    AuditSettings,
    ConsoleSettings,
    DeskSettings,
    EnvelopeSettings,
    EventLoop,
    IndexerSettings,
    KafkaSecurity,
    KafkaSettings,
    KemSuite,
    KeyProtection,
    KeystoreSettings,
    SchoolCalendar,
    Settings,
    SignInSettings,
    WorkerSettings,
    check_environment,
    default_home,
    load_settings,
)

__all__ = [
    "DEMO_PASSPHRASE_FILE",
    "AuditSettings",
    "ConsoleSettings",
    "DeskSettings",
    "EnvelopeSettings",
    "EventLoop",
    "GatewaySettings",
    "IndexerSettings",
    "KafkaSecurity",
    "KafkaSettings",
    "KemSuite",
    "KeyProtection",
    "KeystoreSettings",
    "Network",
    "OpsEndpoint",
    "SchoolCalendar",
    "Settings",
    "SignInSettings",
    "WorkerSettings",
    "check_environment",
    "default_home",
    "load_settings",
    "read_secret_file",
]
