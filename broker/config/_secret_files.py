"""Secrets given as files, the container convention: ``ACCORD_<SECTION>__<SECRET>_FILE``.

Docker and Kubernetes mount secrets as files; a ``SecretStr`` setting may name one instead of
holding the value, and ``broker.config.load_settings`` reads it here. The contents never reach
a message.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, get_args

import structlog
from pydantic import BaseModel, SecretStr
from pydantic_settings import EnvSettingsSource

from broker.errors import ConfigError

log = structlog.get_logger("accord.config")

# (variable, path) already warned of: settings are loaded more than once by some commands,
# and one warning per file is enough.
_warned: set[tuple[str, str]] = set()


class EnvWithoutSecretFiles(EnvSettingsSource):
    """The environment, without ``ACCORD_<SECTION>__<SECRET>_FILE``: ``load_settings``
    reads those files itself (``secret_files``), and the models forbid unknown fields."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        for section, names in secret_fields(self.settings_cls).items():
            values = data.get(section)
            if isinstance(values, dict):
                for name in names:
                    values.pop(f"{name}_file", None)
        return data


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def secret_fields(settings: type[BaseModel]) -> dict[str, list[str]]:
    """Each settings section's ``SecretStr`` fields: the ones a ``_FILE`` variable may fill."""
    out: dict[str, list[str]] = {}
    for section, info in settings.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names = [n for n, f in model.model_fields.items() if _is_secret(f.annotation)]
            if names:
                out[section] = names
    return out


def secret_files(settings: type[BaseModel]) -> dict[str, dict[str, str]]:
    """Secrets read from files, the container convention (Docker and Kubernetes mount
    secrets as files): ``ACCORD_KAFKA__PASSWORD_FILE=/run/secrets/x`` sets the Kafka
    password to that file's contents, one trailing newline removed. Only ``SecretStr``
    settings take a ``_FILE`` (``ACCORD_CONSOLE__USERS_FILE`` stays what it is: a path); the
    variable itself wins when both are set."""
    out: dict[str, dict[str, str]] = {}
    for section, names in secret_fields(settings).items():
        for name in names:
            var = f"ACCORD_{section.upper()}__{name.upper()}"
            path = os.environ.get(f"{var}_FILE")
            if not path or var in os.environ:
                continue
            try:
                value = read_secret_file(path, named=f"{var}_FILE")
            except (OSError, UnicodeDecodeError) as exc:
                # The path is not secret; the file's contents never reach a message.
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(f"{var}_FILE: cannot read {path}: {reason}") from None
            out.setdefault(section, {})[name] = value.removesuffix("\n").removesuffix("\r")
    return out


def read_secret_file(path: str | Path, *, named: str) -> str:
    """A secret's file as text, as it is (``OSError`` or ``UnicodeDecodeError`` raised),
    with one warning if every account on the host may read or write it: Accord makes its own
    secrets 0600 but is given these. ``named`` is the variable or option that named it.

    Group access is left alone: Kubernetes mounts secrets 0440 for the pod's fsGroup, and
    Compose's set-up 0440 for a second reader. The file is judged as opened (a Kubernetes
    mount is a link to it); its contents never reach the warning."""
    with open(path, encoding="utf-8") as file:  # noqa: PTH123  # the file judged is the one read
        mode = os.fstat(file.fileno()).st_mode
        if mode & (stat.S_IROTH | stat.S_IWOTH) and (named, str(path)) not in _warned:
            _warned.add((named, str(path)))
            log.warning(
                "secret_file_open_to_others", setting=named, file=str(path),
                mode=oct(stat.S_IMODE(mode)), fix=f"chmod o-rwx {path}",
            )  # fmt: skip
        return file.read()
