"""A rendered pod's settings as Accord loads them: its container's environment, with each
``ACCORD_…_FILE`` variable's file found on the volume it names and filled in a temporary
folder with a value that says which Secret key it came from (``<secret>/<key>``)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from broker.config import Settings, load_settings
from broker.config._secret_files import secret_fields

#: The variables that name a secret's file (``ACCORD_KAFKA__CA_FILE`` names a certificate).
SECRET_FILE_VARS = frozenset(
    f"ACCORD_{section.upper()}__{name.upper()}_FILE"
    for section, names in secret_fields(Settings).items()
    for name in names
)


def secret_behind(pod: dict[str, Any], path: str) -> tuple[str, str, dict[str, Any]]:
    """(Secret, key, mount) of the file ``path`` in the pod's container: the read-only volume
    mounted above it, and the item of a Secret that volume projects there."""
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        inside = (
            PurePosixPath(path).relative_to(mount["mountPath"])
            if PurePosixPath(path).is_relative_to(mount["mountPath"])
            else None
        )
        if inside is None:
            continue
        volume = volumes[mount["name"]]
        sources = volume.get("projected", {}).get("sources", [])
        if "secret" in volume:
            sources = [{"secret": {"name": volume["secret"]["secretName"],
                                   "items": volume["secret"].get("items", [])}}]  # fmt: skip
        for source in sources:
            secret = source.get("secret")
            for item in (secret or {}).get("items", []):
                if item["path"] == str(inside):
                    return secret["name"], item["key"], mount
    raise AssertionError(f"{path}: no Secret's key is mounted there")


def settings_of(
    pod: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, dict[str, tuple[str, str]]]:
    """The settings ``load_settings()`` makes of the pod's container's environment, and, for
    each ``_FILE`` variable, the (Secret, key) its file is."""
    (container,) = pod["containers"]
    files: dict[str, tuple[str, str]] = {}
    with monkeypatch.context() as m:
        for name in [n for n in os.environ if n.startswith("ACCORD_")]:
            m.delenv(name)
        for env in container["env"]:
            assert "value" in env or env["name"] == "POD_NAME", env  # no secret in the env
            value = env.get("value", "pod-name")
            if env["name"] in SECRET_FILE_VARS:
                secret, key, _ = secret_behind(pod, value)
                files[env["name"]] = (secret, key)
                local = tmp_path / env["name"]
                local.write_text(f"{secret}/{key}\n", encoding="utf-8")
                value = str(local)
            m.setenv(env["name"], value)
        return load_settings(), files
