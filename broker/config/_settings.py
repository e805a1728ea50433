"""The settings models and ``load_settings`` (see the package docstring)."""

from __future__ import annotations

import enum
import os
import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from broker.config._base import (
    AllowedHosts,
    BehindProxies,
    ClientLimits,
    OpsEndpoint,
    tls_one_way,
)
from broker.config._base import Frozen as _Frozen
from broker.config._env_errors import named_by_variables, shown, unknown_setting, unreadable_json
from broker.config._env_names import unknown_variable
from broker.config._gateway import GatewaySettings
from broker.config._secret_files import EnvWithoutSecretFiles, secret_files
from broker.errors import ConfigError


def default_home() -> Path:
    """Where Accord keeps its cache, keys and embedded-broker data unless told otherwise."""
    env = os.environ.get("ACCORD_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "accord"


_NO_POLICIES = "no policies/ here: pass --policies DIR or set ACCORD_POLICIES"


def _example_policies() -> Path | None:
    """The example bundle: the project's own ``policies/`` (a source checkout run from
    elsewhere), else the copy installed with the package (``broker/_bundle``); None: neither."""
    package = Path(__file__).resolve().parent.parent  # broker/, from broker/config/
    for bundle in (package.parent / "policies", package / "_bundle"):
        if (bundle / "parties.yaml").is_file():
            return bundle
    return None


class KemSuite(enum.StrEnum):
    """HPKE key-encapsulation choice for sealing data keys.

    The default is the hybrid post-quantum KEM: records are kept for decades, so
    harvest-now-decrypt-later is a real threat. X25519 alone is an explicit downgrade.
    """

    HYBRID = "mlkem768-x25519"
    X25519 = "x25519"


class KafkaSecurity(enum.StrEnum):
    """How clients reach Kafka. TLS with a SCRAM-SHA-512 login per principal is the default;
    PLAINTEXT (no encryption, no authentication) is an explicit opt-in for local experiments
    with synthetic data, never for a deployment."""

    SASL_SSL = "SASL_SSL"
    PLAINTEXT = "PLAINTEXT"


class EventLoop(enum.StrEnum):
    """Which asyncio event loop runs the worker. uvloop (libuv, with its own TLS transport)
    takes about a tenth off the worker's CPU per event (docs/performance.md, "uvloop");
    ``asyncio`` is the standard library's, for a platform without uvloop or to rule it out
    when diagnosing. Nothing the worker decides or writes depends on which."""

    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


# host:port, comma-separated: a name or IPv4 address, or an IPv6 one in brackets.
_BOOTSTRAP = re.compile(r"^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$")


def _bootstrap(value: str) -> str:
    servers = [s.strip() for s in value.split(",")]
    for server in servers:
        if not _BOOTSTRAP.match(server) or not 0 < int(server.rsplit(":", 1)[1]) < 2**16:
            raise ValueError("must be host:port[,host:port...] with a port of 1-65535")
    return ",".join(servers)


class KafkaSettings(_Frozen):
    bootstrap: Annotated[str, AfterValidator(_bootstrap)] = "127.0.0.1:9092"
    client_id: str = "accord"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: KafkaSecurity = KafkaSecurity.SASL_SSL
    # The principal's SCRAM login. Unset: read from the principal's client file in
    # ``credentials_dir`` (what `accord kafka up` and `accord kafka provision` write).
    username: str | None = None
    password: SecretStr | None = None
    # The CA that signs the brokers' certificates (PEM). Unset: the client file's, else the
    # system's trust store.
    ca_file: Path | None = None
    credentials_dir: Path | None = None  # default: <home>/kafka-data/clients
    # Whose client file was looked for and not found (``without_login``): for the one line
    # that says there is no login, if a client is made.
    _looked_for: tuple[str, Path] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _login_whole(self) -> KafkaSettings:
        # Half a login is a mistake either way: a password alone was silently passed over for
        # the client file's (a rotated password set and never used), a username alone was
        # called no login at all though the client file had one.
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "set both ACCORD_KAFKA__USERNAME and ACCORD_KAFKA__PASSWORD (or its _FILE), "
                "or neither to use the principal's client file"
            )
        return self

    def without_login(self, principal: str, client_file: Path) -> KafkaSettings:
        """These settings, remembering that ``principal``'s client file is not there."""
        copy = self.model_copy()
        copy._looked_for = (principal, client_file)
        return copy

    def no_login(self) -> str:
        """Why a secured client has no login, in one line that names whose and where."""
        if self._looked_for is None:
            return (
                "no Kafka login for this principal: set ACCORD_KAFKA__USERNAME and "
                "ACCORD_KAFKA__PASSWORD, or give it a client file with 'accord kafka provision'"
            )
        principal, path = self._looked_for
        return (
            f"no Kafka login for {principal}: {path} does not exist "
            "(ACCORD_KAFKA__CREDENTIALS_DIR); make it with 'accord kafka provision', or set "
            "ACCORD_KAFKA__USERNAME and ACCORD_KAFKA__PASSWORD"
        )


class KeyProtection(enum.StrEnum):
    """How keystores keep private keys on disk. Under a passphrase (scrypt, then AES-256-GCM)
    is the default, and without one set no keystore is made or opened; NONE (unencrypted,
    readable by anyone who can read the folder) is an explicit opt-in for synthetic data."""

    PASSPHRASE = "passphrase"  # noqa: S105  # a mode's name, not a password
    NONE = "none"


# What the demo makes when no passphrase is set: `accord demo` seals its keystores under it.
DEMO_PASSPHRASE_FILE = "keystore-passphrase"  # noqa: S105  # a file's name, not its contents


def _not_blank(value: SecretStr | None) -> SecretStr | None:
    # `ACCORD_KEYSTORE__PASSPHRASE="$PASS"` with PASS unset would seal keys under nothing.
    if value is not None and not value.get_secret_value().strip():
        raise ValueError("is empty: give the passphrase, or leave the setting unset")
    return value


class KeystoreSettings(_Frozen):
    path: Path | None = None  # default: <home>/keys
    passphrase: Annotated[SecretStr | None, AfterValidator(_not_blank)] = None
    protection: KeyProtection = KeyProtection.PASSPHRASE


class EnvelopeSettings(_Frozen):
    kem: KemSuite = KemSuite.HYBRID
    # A data key seals at most this many records and lives at most this long; see
    # docs/envelope.md for why these bounds (nonce safety is far below AES-GCM's 2^32 limit,
    # and a short lifetime bounds what one leaked DEK exposes).
    dek_max_records: int = Field(default=10_000, ge=1, le=2**32 - 1)
    dek_max_seconds: float = Field(default=300.0, gt=0)


class AuditSettings(_Frozen):
    db: SecretStr | None = None  # a URL may hold a password; default: SQLite under <home>


class WorkerSettings(OpsEndpoint):
    metrics_port: int | None = Field(default=9464, ge=0, le=65535)
    # How long the group waits to hear from a worker before handing its partitions to the
    # others (broker/pipeline/_group.py): Kafka's own client default. A clean stop leaves at
    # once; a killed worker's partitions wait this long. The broker allows 6 s to 30 minutes.
    group_session_timeout_ms: int = Field(default=45_000, ge=6_000, le=1_800_000)
    event_loop: EventLoop = EventLoop.UVLOOP


class IndexerSettings(OpsEndpoint):
    """``accord audit index --follow`` (``--once`` ends by itself and serves nothing)."""

    # A safeguarding override not reviewed by an IG officer within this many days counts
    # as overdue (``accord_audit_overrides_overdue``, alert AccordOverridesOverdue).
    override_review_days: float = Field(default=3.0, gt=0, le=365)


class SignInSettings(ClientLimits, BehindProxies):
    """Who may sign in to a web app of Accord's (the console, a desk) and how long a session
    lives; ``broker.webauth.Guard`` reads these."""

    host: str = "127.0.0.1"
    users_file: Path | None = None
    session_idle_minutes: int = Field(default=15, ge=1, le=240)
    session_max_hours: int = Field(default=8, ge=1, le=24)
    # Secure cookies need HTTPS; browsers make an exception for loopback only. None: Secure
    # behind a proxy (forwarded_hops set: the browser's side of it is HTTPS) and on any
    # address but loopback, so a session never travels over plain HTTP; False only for a
    # proxy that serves plain HTTP, where a browser would not send a Secure cookie back.
    secure_cookies: bool | None = None
    # Beyond loopback the pages carry passwords and one-time codes, so only over TLS: the
    # app's own (tls_cert and tls_key, PEM files) or a proxy's in front of it
    # (tls_terminated_by_proxy: the app speaks plain HTTP to the proxy, and warns at every
    # start). Neither, the app refuses to start (broker.webauth.check_exposure). Either, the
    # pages send Strict-Transport-Security.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_terminated_by_proxy: bool = False
    _tls_one_way = field_validator("tls_terminated_by_proxy")(tls_one_way)
    # forwarded_hops, trusted_proxies (BehindProxies): the proxies in front, and which
    # connections' X-Forwarded-For is believed. Behind a proxy set both, or every user is the
    # proxy's one address to the sign-in throttle below; from any other peer (a guesser who
    # reaches the port directly) the connection's own address is the client, whatever the
    # request says.
    # The names (Host header, any port) the pages answer to; anything else is refused (400),
    # so a DNS-rebinding page cannot drive a console on loopback. Loopback names (localhost,
    # 127.0.0.1, [::1]) are always allowed: no other site's page can send them. Unset: the
    # address the app listens on, and none more on a wildcard (0.0.0.0, ::), which then
    # refuses to start without a list. "*" allows any name: only behind a proxy that routes by
    # name itself (a Kubernetes Ingress rule's host). Comma-separated or a JSON list.
    allowed_hosts: AllowedHosts = None
    # Sign-in throttling (broker/webauth/_throttle.py): slows guessing, never locks anyone
    # out. A client (network address) may fail this many times per window, across all names;
    # one client may fail at one account per_account times before each of its next tries
    # there waits 1 s, 2 s, 4 s… up to the cap; once unknown clients together have failed at
    # an account per_account_total times in the window (more than one address can), every
    # unknown client waits so. A browser that signed in before (a known device, remembered
    # for known_device_days) gets per_account tries of its own and is not slowed by others.
    sign_in_failures_per_client: int = Field(default=10, ge=1, le=1000)
    sign_in_failures_per_account: int = Field(default=5, ge=1, le=100)
    sign_in_failures_per_account_total: int = Field(default=50, ge=1, le=10_000)
    sign_in_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    sign_in_max_delay_seconds: int = Field(default=300, ge=1, le=3600)
    known_device_days: int = Field(default=90, ge=1, le=400)
    # Sign-in checks (64 MiB of Argon2 each, two at a time) allowed to wait their turn; an
    # attempt past them is refused at once, before its name is looked at (so its speed says
    # nothing of whether the account exists): "too many sign-ins at once", 503.
    sign_in_checks_waiting: int = Field(default=8, ge=1, le=1000)
    # Of those places (and the two running), how many one network address (as the throttle
    # counts it) may hold at once: a flood from one address cannot fill them all. Officers
    # behind one office NAT, or a load balancer that replaces addresses with its own, share
    # one address: raise it for as many as may sign in at the same moment.
    sign_in_checks_per_address: int = Field(default=4, ge=1, le=1000)


class ConsoleSettings(OpsEndpoint, SignInSettings):
    """The governance console: where it listens, who may sign in, how long a session lives.

    Its ops server (``metrics_host``/``metrics_port``) is a listener of its own, apart from
    the pages: probes and metrics need no session, and the console's address need not be
    the one Prometheus scrapes. ``users_file`` default: <home>/console/users.json."""

    port: int = Field(default=8765, ge=0, le=65535)


class DeskSettings(OpsEndpoint, SignInSettings):
    """The recipients' desk (``accord desk --as PARTY``): where it listens, who may sign in,
    where the party's own store is, how often it polls the party's delivery topic.
    ``users_file`` default: <home>/desk/<party>/users.json.

    Its ops server (``metrics_host``/``metrics_port``, none by default) serves the desk's
    and the flag service's (``accord desk flags``) probes and metrics, each process on the
    port its own environment gives: the desk keeps ``/metrics`` on its pages' port too."""

    port: int = Field(default=8766, ge=0, le=65535)
    # sqlite:///PATH or postgresql://…; default: <home>/desk/<party>.db. It holds delivered
    # views (personal data): a secret, as a URL may carry a password.
    store: SecretStr | None = None
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # How long a page waits for Kafka to take its access acknowledgement (or a form its
    # referral or outcome) before it says it could not: a person is waiting.
    send_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    # A delivery this keystore cannot open because of its keys (one of the party's own
    # lost or revoked, a broker key not imported) holds the desk's reading until it opens:
    # true reports each such record and goes past it, losing it (docs/desk.md).
    skip_key_problems: bool = False
    # How often the flag service (``accord desk flags``) reads its topics' retention again:
    # well within the withdrawal markers' 25 days' grace (broker.desk._withdrawn_keep). At
    # least a minute: each reading is a DescribeConfigs on the cluster, and a second's
    # interval (or 0.0001) would only load the brokers for no gain in safety.
    flags_recheck_minutes: float = Field(default=10.0, ge=1, le=24 * 60)


class SchoolCalendar(_Frozen):
    """When school days start, in which timezone, and which weekdays are closed: the clock of
    Operation Encompass deadlines (``broker.policy.encompass_deadline``). Weekends are never
    school days; ``closed`` adds holidays and training days."""

    day_starts: time = time(8, 30)
    timezone: str = "Europe/London"
    closed: frozenset[date] = frozenset()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # A typo must be refused, not become UTC silently; ZoneInfo's error is a KeyError,
        # which pydantic would not report as a validation error.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("not a known IANA time zone (e.g. Europe/London)") from exc
        return value

    def is_school_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.closed


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ACCORD_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del env_settings  # replaced: the same source, minus the secrets' _FILE variables
        env = EnvWithoutSecretFiles(settings_cls)
        return init_settings, env, dotenv_settings, file_secret_settings

    home: Path = Field(default_factory=default_home)
    # ACCORD_POLICIES as given (None: unset). Read it through ``policies`` or
    # ``policies_at_hand()``, which add ``policies/`` here; only a command whose point is
    # trying the example falls back to it (``policies_or_example()``).
    policies_dir: Path | None = Field(default=None, validation_alias="accord_policies")

    @model_validator(mode="before")
    @classmethod
    def _policies_given(cls, data: Any) -> Any:
        # ``Settings(policies=DIR)`` (a test, a caller's override) means what ACCORD_POLICIES
        # does; the environment cannot reach this key (only the alias is read from it).
        if isinstance(data, dict) and "policies" in data:
            data = dict(data)
            data["accord_policies"] = data.pop("policies")
        return data

    kafka: KafkaSettings = KafkaSettings()
    keystore: KeystoreSettings = KeystoreSettings()
    envelope: EnvelopeSettings = EnvelopeSettings()
    audit: AuditSettings = AuditSettings()
    console: ConsoleSettings = ConsoleSettings()
    desk: DeskSettings = DeskSettings()
    schools: SchoolCalendar = SchoolCalendar()
    worker: WorkerSettings = WorkerSettings()
    indexer: IndexerSettings = IndexerSettings()
    gateway: GatewaySettings = GatewaySettings()

    def policies_at_hand(self) -> Path | None:
        """The policy bundle folder: ACCORD_POLICIES, else ``policies/`` here; None when
        neither names one. The folder is not checked: loading it says what is wrong."""
        if self.policies_dir is not None:
            return self.policies_dir
        here = Path("policies")
        return here if here.is_dir() else None

    @property
    def policies(self) -> Path:
        """:meth:`policies_at_hand`, or ``ConfigError``. Never the example bundle: a command
        that acts on a cluster, a desk or real events must not quietly act under the
        example's parties and agreements because it was run in the wrong folder."""
        found = self.policies_at_hand()
        if found is None:
            raise ConfigError(_NO_POLICIES)
        return found

    def policies_or_example(self) -> Path:
        """:meth:`policies_at_hand`, else the example bundle: for the commands whose point is
        trying the example (``accord demo``, ``accord policy explain`` and ``test``)."""
        return self.policies_at_hand() or _example_policies() or Path("policies")

    @property
    def keys_dir(self) -> Path:
        return self.keystore.path or self.home / "keys"

    def keystore_path(self, principal: str) -> Path:
        """``principal``'s keystore: ``<keys>/<principal>`` when the keys folder holds one
        keystore per principal (what ``accord keys init --policies`` makes for the demo and
        tests, as separate organisations would have), else the keys folder itself."""
        own = self.keys_dir / principal
        return own if (own / "keystore.json").is_file() else self.keys_dir

    def keystore_passphrase(self) -> SecretStr | None:
        """The passphrase to make or open a keystore with; ``ConfigError`` when none is set,
        unless unencrypted keystores were asked for (``ACCORD_KEYSTORE__PROTECTION=none``)."""
        if self.keystore.passphrase is not None or self.keystore.protection is KeyProtection.NONE:
            return self.keystore.passphrase
        demo = self.home / DEMO_PASSPHRASE_FILE
        hint = f"; the demo's is {demo}" if demo.is_file() else ""
        raise ConfigError(
            "no keystore passphrase: set ACCORD_KEYSTORE__PASSPHRASE or "
            f"ACCORD_KEYSTORE__PASSPHRASE_FILE{hint} (ACCORD_KEYSTORE__PROTECTION=none allows "
            "unencrypted private keys, for synthetic data only)"
        )

    @property
    def kafka_credentials_dir(self) -> Path:
        return self.kafka.credentials_dir or self.home / "kafka-data" / "clients"

    @property
    def console_users_file(self) -> Path:
        return self.console.users_file or self.home / "console" / "users.json"

    def desk_users_file(self, party: str) -> Path:
        return self.desk.users_file or self.home / "desk" / party / "users.json"


def check_environment() -> None:
    """Refuse an ``ACCORD_*`` variable that is no setting (``ConfigError``, one line).

    pydantic-settings passes over a name no section's spelling reaches (ACCORD_CONSOLE_HOST),
    leaving the default in force without a word. Every ``accord`` command calls this first
    (``broker.cli``): a setting misspelt is refused, never ignored. ``load_settings`` only
    warns of one, for an application embedding the SDK may have ACCORD_* variables of its
    own, or Kubernetes' for someone's Service named accord-*."""
    unknown = unknown_variable(os.environ, Settings)
    if unknown is not None:
        raise ConfigError(unknown)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment once; CLI options arrive as ``overrides``."""
    unknown = unknown_variable(os.environ, Settings)
    if unknown is not None:  # refused by check_environment where accord is the program
        structlog.get_logger("accord.config").warning("settings_unknown_variable", problem=unknown)
    flat: dict[str, object] = {}
    from_files: dict[str, dict[str, str]] = {}
    try:
        # The flat aliases fill in one field each, as dicts: pydantic-settings merges them
        # with the rest of the nested settings from the environment (a model instance would
        # replace the whole section, dropping ACCORD_KAFKA__PARTITIONS and the like). The
        # nested spelling, being the more specific, wins when both are set.
        bootstrap = os.environ.get("ACCORD_KAFKA_BOOTSTRAP")
        if bootstrap and "ACCORD_KAFKA__BOOTSTRAP" not in os.environ:
            flat["kafka"] = {"bootstrap": bootstrap}
        db = os.environ.get("ACCORD_AUDIT_DB")
        if db and "ACCORD_AUDIT__DB" not in os.environ:
            flat["audit"] = {"db": db}
        from_files = secret_files(Settings)
        for section, values in from_files.items():
            flat[section] = {**flat.get(section, {}), **values}  # type: ignore[dict-item]  # a section's dict
        flat.update({k: v for k, v in overrides.items() if v is not None})
        return Settings(**flat)  # type: ignore[arg-type]  # pydantic-settings validates kwargs
    except ValidationError as exc:
        # Name the setting, never its value: it may be a passphrase or a database password.
        first = exc.errors(include_input=False, include_url=False)[0]
        # A list's item is named by its place, not as a variable nobody set (..._CLOSED__0).
        loc = [str(part) for part in first["loc"] if not isinstance(part, int)]
        items = [part + 1 for part in first["loc"] if isinstance(part, int)]
        extra = first["type"] == "extra_forbidden"
        # No key that is not a name, nor an unknown one from inside a JSON value (a known
        # setting's name, of a value of the wrong kind, is ours to repeat).
        visible = shown(named_by_variables(loc, os.environ) if extra else loc)
        name = "__".join(part.upper() for part in visible)
        name = name if name.startswith("ACCORD_") else f"ACCORD_{name}"  # an alias has it
        section, *field = loc
        if field and field[0] in from_files.get(section, {}):
            name += "_FILE"  # the variable that was set: its file holds the value
        message = first["msg"].removeprefix("Value error, ")
        if extra and len(loc) > 1 and loc[0] in Settings.model_fields:
            message = unknown_setting(loc, Settings, from_value=len(visible) < len(loc))
        where = f" (item {items[0]})" if items else ""
        raise ConfigError(f"{name}{where}: {message}") from None
    except SettingsError as exc:
        named = unreadable_json(str(exc), Settings, os.environ)
        if named is not None:
            raise ConfigError(named) from None
        raise ConfigError(f"an ACCORD_* setting cannot be read: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    # pydantic-settings names the field ("error parsing value for field "kafka" from source
    # "EnvSettingsSource""): keep that part, which holds no value.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
