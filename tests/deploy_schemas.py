"""Strimzi's CRD schemas, to check what ``accord deploy render --target kubernetes`` writes.

Strimzi publishes its CRDs, exactly as it installs them, in the ``tests`` jar of its ``api``
artifact (``crds/v1/*.yaml``); ``deploy/strimzi/pom.xml`` pins the version. Maven copies
that jar once into ``<ACCORD_HOME or ~/.cache/accord>/strimzi-<version>/``, the way Accord
fetches Kafka's jars (broker/devkafka/_fetch.py): into a staging folder, renamed into place
only when complete, so an interrupted fetch never leaves a cache later runs would trust.

The API server checks a custom resource against its CRD's ``openAPIV3Schema`` and, with
strict field validation (``kubectl apply``'s default), refuses fields the schema does not
declare. :func:`strict` makes jsonschema do the same. CEL rules (``x-kubernetes-validations``)
are not evaluated: the few Strimzi has concern metrics settings the render does not use.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STRIMZI_POM = REPO / "deploy" / "strimzi" / "pom.xml"
# Value keywords (mutual exclusions, alternatives) list a field to say it must or must not
# be there, not to declare the object's fields: Kubernetes' structural schemas declare them
# in ``properties`` alone, so only those are made closed.
_VALUE_KEYWORDS = frozenset({"oneOf", "anyOf", "allOf", "not"})


def strimzi_version() -> str:
    match = re.search(r"<strimzi\.version>([^<]+)</strimzi\.version>", STRIMZI_POM.read_text())
    assert match, f"{STRIMZI_POM} does not pin <strimzi.version>"
    return match.group(1).strip()


def _home() -> Path:
    env = os.environ.get("ACCORD_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "accord"


def strimzi_jar() -> Path:
    """The Strimzi API tests jar, fetched with Maven the first time. No Maven, or no jar, is
    a failure that says so: these checks are the only proof the manifests are valid."""
    version = strimzi_version()
    target = _home() / f"strimzi-{version}"
    jar = target / f"api-{version}-tests.jar"
    if jar.is_file():
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        pytest.fail(
            "Maven (mvn) not found: it fetches Strimzi's CRDs (io.strimzi:api:"
            f"{version}:tests) to check the Kubernetes render against; install it "
            "(Debian: apt-get install maven)",
            pytrace=False,
        )
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cmd = [mvn, "-q", "-B", "-f", str(STRIMZI_POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={staging}"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not (staging / jar.name).is_file():
        shutil.rmtree(staging, ignore_errors=True)
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:] or ["no output"]
        pytest.fail(
            f"Maven could not fetch io.strimzi:api:{version}:tests: {' / '.join(tail)}",
            pytrace=False,
        )
    try:
        staging.rename(target)
    except OSError:
        # Another session renamed its copy into place first: theirs is as good.
        shutil.rmtree(staging, ignore_errors=True)
    assert jar.is_file(), f"{target} exists without {jar.name}: remove it and run again"
    return jar


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI schema in which an object declaring its ``properties`` refuses any
    other field, unless it says it keeps unknown fields (as the API server prunes or, with
    strict field validation, refuses them)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in _VALUE_KEYWORDS else strict(v)) for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    return out


@functools.cache
def strimzi_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) to the strict schema of every served ``v1`` Strimzi resource."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with zipfile.ZipFile(strimzi_jar()) as jar:
        for name in jar.namelist():
            if not (name.startswith("crds/v1/") and name.endswith(".yaml")):
                continue
            crd = yaml.safe_load(jar.read(name))
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version["name"] == "v1" and version["served"]:
                    schema = version["schema"]["openAPIV3Schema"]
                    out[(f"{group}/v1", kind)] = strict(schema)
    assert out, "the Strimzi jar holds no crds/v1/*.yaml"
    return out


def strimzi_errors(doc: dict[str, Any]) -> list[str]:
    """Every way ``doc`` breaks its CRD's schema ("path: message"); empty when valid."""
    schema = strimzi_schemas().get((doc["apiVersion"], doc["kind"]))
    assert schema is not None, f"Strimzi has no CRD for {doc['apiVersion']} {doc['kind']}"
    # CRD schemas are OpenAPI 3.0's subset of JSON Schema draft 4; jsonschema ignores the
    # x-kubernetes-* extensions, which are not validation keywords.
    validator = jsonschema.Draft4Validator(schema)
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in validator.iter_errors(doc)
    )
