"""What the settings models share: frozen models, and a long-running process's ops server.

Apart from ``_settings`` so that a section with a module of its own (``_gateway``) can build
on them without importing the module that gathers every section.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _host_list(value: object) -> object:
    # From the environment: "a.example, b.example" as well as a JSON list.
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


#: The host names a web front end answers to (``broker.webauth.HostCheck``).
HostList = Annotated[tuple[str, ...] | None, BeforeValidator(_host_list)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpsEndpoint(Frozen):
    """A long-running process's ops server: ``/metrics``, ``/livez``, ``/readyz``
    (broker/ops). Loopback by default: metrics are not exposed on a network unless asked
    (set ``metrics_host`` to ``0.0.0.0`` or a pod address for an external Prometheus).
    ``metrics_port`` unset: no ops server."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Not live once the main loop has not gone round for this long (idle, the worker's goes
    # round every 200 ms, at each empty fetch; a batch commit or a slow database may take a
    # few seconds).
    stale_after_seconds: float = Field(default=30.0, gt=0, le=3600)
