"""``accord deploy render --target compose``: a valid Compose file, secrets only in files,
each service given only its own, and a re-render that follows the bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from broker.deploy import Target, deployment, render_files, write_render
from broker.policy import load_bundle

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "schemas" / "vendor" / "compose-spec" / "compose-spec.json"


def _render(bundle: Path, out: Path, *, brokers: int = 3) -> dict[str, str]:
    dep = deployment(load_bundle(bundle), bundle, brokers=brokers, partitions=3, image="a:1")
    files, _ = render_files(dep, Target.COMPOSE, out, external_host="kafka.example.org")
    write_render(out, files)
    return files


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("compose")
    _render(REPO / "policies", out)
    return out, yaml.safe_load((out / "compose.yaml").read_text())


def test_the_compose_file_is_valid_against_the_compose_specification(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = rendered
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    # And the schema does catch a mistake of the kind a renderer could make.
    broken = {**doc, "services": {**doc["services"], "worker": {"restart": ["always"]}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_production_has_three_brokers_and_every_accord_process(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    out, doc = rendered
    services = doc["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "provision", "worker", "indexer", "console",
            "postgres", "prometheus", "grafana"} <= set(services)  # fmt: skip
    props = (out / "kafka" / "server-2.properties").read_text()
    assert "node.id=2\n" in props
    assert "min.insync.replicas=2\n" in props
    assert "transaction.state.log.replication.factor=3\n" in props
    assert "allow.everyone.if.no.acl.found=false\n" in props
    assert "auto.create.topics.enable=false\n" in props
    assert "EXTERNAL://kafka.example.org:9095" in props
    for name in ("worker", "indexer", "console"):
        assert services[name]["depends_on"]["provision"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]
    # The host's proxy reaches the console through Docker's gateway: believe its forwarding.
    assert services["console"]["environment"]["ACCORD_CONSOLE__FORWARDED_HOPS"] == "1"
    assert services["console"]["ports"] == ["127.0.0.1:8765:8765"]


def test_every_service_has_the_memory_and_cpu_limits_its_kubernetes_pod_has(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    """One runaway process must not take the host from Kafka and the others: Accord's
    processes and the brokers are held to their pods' limits, in Docker's units."""
    from broker.deploy import kubernetes_files

    _, doc = rendered
    limits = {name: svc["deploy"]["resources"]["limits"] for name, svc in doc["services"].items()}
    assert all("memory" in lim for lim in limits.values()), limits
    # A CPU limit on all but the brokers, which Kubernetes does not throttle either.
    assert {n for n, lim in limits.items() if "cpus" not in lim} == {
        "kafka-1",
        "kafka-2",
        "kafka-3",
    }
    dep = deployment(load_bundle(REPO / "policies"), REPO / "policies", brokers=3, partitions=3,
                     image="a:1")  # fmt: skip
    pods = kubernetes_files(dep)
    units = {"Mi": "m", "Gi": "g"}
    for name in ("worker", "indexer", "console"):
        text = pods[f"kubernetes/accord/{name}/deployment.yaml"]
        pod = yaml.safe_load(text)["spec"]["template"]["spec"]["containers"][0]["resources"]
        memory = pod["limits"]["memory"]
        assert limits[name]["memory"] == memory[:-2] + units[memory[-2:]], name
        assert limits[name]["cpus"] == pod["limits"]["cpu"], name
    assert limits["kafka-1"] == {"memory": "4g"}  # the Strimzi node pool's


def test_no_secret_value_is_in_the_yaml_or_the_broker_configuration(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = rendered
    values = set()
    for secret in (out / "secrets").iterdir():
        assert secret.stat().st_mode & 0o077 == 0, f"{secret.name} is readable by others"
        text = secret.read_text()
        if secret.name.endswith(".librdkafka.conf"):
            values |= {ln.partition("=")[2] for ln in text.splitlines()
                       if ln.startswith("sasl.password=")}  # fmt: skip
        elif "PRIVATE KEY" in text:
            body = text.split("PRIVATE KEY-----")[1]
            values.add(body.split("-----")[0].strip().splitlines()[0])
        elif "password" in secret.name or "passphrase" in secret.name:
            values.add(text.strip())
    assert values, "no secret values found to look for"
    rendered_text = "".join(
        p.read_text() for p in out.rglob("*") if p.is_file() and "secrets" not in p.parts
    )
    leaked = [v for v in values if v in rendered_text]
    assert not leaked


def test_each_service_is_given_only_the_secrets_it_needs(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = rendered
    given = {
        name: {s["source"] for s in svc.get("secrets", [])} for name, svc in doc["services"].items()
    }
    assert given["worker"] == {
        "kafka-ca.pem", "worker.librdkafka.conf", "keystore-passphrase-worker",
    }  # fmt: skip
    assert given["indexer"] == {
        "kafka-ca.pem", "indexer.librdkafka.conf", "audit-db-url", "keystore-passphrase-indexer",
    }  # fmt: skip
    assert "kafka-ca.key" not in set().union(*given.values())
    # Only provisioning (the admin's job) sees the parties' logins, and no desk runs
    # unless named (tests/unit/deploy/test_compose_desks.py: a desk's own secrets).
    holders = {n for n, s in given.items() if "wmp.librdkafka.conf" in s}
    assert holders == {"provision"}
    assert {n for n, s in given.items() if "sandwell-coord.librdkafka.conf" in s} == {"provision"}
    assert not any(
        n.startswith("keystore-passphrase-sandwell") for n in set().union(*given.values())
    )


def test_every_keystore_passphrase_made_is_one_a_service_is_given_and_none_is_governance_s(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    """The IG officer's key never lives on the platform host: a passphrase for it there would
    be one no service reads, kept and backed up with secrets/ for nothing."""
    out, doc = rendered
    made = {p.name for p in (out / "secrets").glob("keystore-passphrase-*")}
    given = {s["source"] for svc in doc["services"].values() for s in svc.get("secrets", [])}
    assert made
    assert made <= given
    assert "keystore-passphrase-governance" not in made


def test_a_re_render_keeps_every_secret_and_onboarding_changes_only_that_party(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle, ignore=shutil.ignore_patterns("scenarios"))
    out = tmp_path / "out"
    before = _render(bundle, out)
    secrets_before = {p.name: p.read_bytes() for p in (out / "secrets").iterdir()}
    with (bundle / "parties.yaml").open("a") as fh:
        fh.write("  cog-new-hub:\n    name: A new Sandwell hub\n    kind: hub\n")
    after = _render(bundle, out)
    secrets_after = {p.name: p.read_bytes() for p in (out / "secrets").iterdir()}
    # Nothing existing was re-made; the new hub got its login's client files.
    assert {k: secrets_after[k] for k in secrets_before} == secrets_before
    assert set(secrets_after) - set(secrets_before) == {
        "cog-new-hub.librdkafka.conf", "cog-new-hub.properties",
    }  # fmt: skip
    changed = {k for k in after if before.get(k) != after[k]}
    # The bundle travels with the deployment; the provision service is given the new
    # login (and its secret an owner); nothing else changes: the topic, login and ACLs are
    # provisioning's to make, from the bundle.
    assert changed == {"compose.yaml", "policies/parties.yaml", "secret-owners.sh"}
    old, new = yaml.safe_load(before["compose.yaml"]), yaml.safe_load(after["compose.yaml"])
    assert set(new["secrets"]) - set(old["secrets"]) == {"cog-new-hub.librdkafka.conf"}
    new_refs = {s["source"] for s in new["services"]["provision"]["secrets"]}
    old_refs = {s["source"] for s in old["services"]["provision"]["secrets"]}
    assert new_refs - old_refs == {"cog-new-hub.librdkafka.conf"}
    for name in ("worker", "indexer", "kafka-1"):
        assert new["services"][name] == old["services"][name]
    # The console reads the bundle only when it starts: the new version, a label, is what
    # makes `docker compose up -d` recreate it with the new party.
    console_old, console_new = old["services"]["console"], new["services"]["console"]
    assert console_new.pop("labels") != console_old.pop("labels")
    assert console_new == console_old


def test_files_a_render_no_longer_makes_are_removed_and_the_operators_own_stay(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    (out / "notes.txt").parent.mkdir(parents=True)
    (out / "notes.txt").write_text("the operator's own file")
    _render(REPO / "policies", out, brokers=3)
    assert (out / "kafka" / "server-3.properties").is_file()
    _render(REPO / "policies", out, brokers=1)
    assert not (out / "kafka" / "server-3.properties").exists()
    assert (out / "notes.txt").read_text() == "the operator's own file"


def test_every_secret_can_be_owned_by_its_readers_alone(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    """On a Linux host a bind-mounted secret keeps its owner and mode: the rendered script
    gives each to the one or two users whose containers read it, and nobody else."""
    from broker.deploy._compose import secret_readers

    out, doc = rendered
    readers = secret_readers(doc)
    script = (out / "secret-owners.sh").read_text()
    for name, users in readers.items():
        assert name in script
        if name not in {"kafka-ca.pem", "kafka-cluster-id"}:
            assert len(users) <= 2, f"{name} is read by {users}"
            assert f"chown {min(users)[0]}:" in script.split(f" {name} ")[0].splitlines()[-1]
    assert readers["kafka-1.pem"] == {(1000, 1000)}  # the apache/kafka image's user
    assert readers["worker.librdkafka.conf"] == {(10001, 10001)}


def test_the_documented_in_container_key_import_reaches_each_services_keystore_and_passphrase(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    """After secret-owners.sh the host's user cannot read the passphrases: docs/deployment.md
    imports later directories inside each service's container, which must then open that
    service's own keystore, writable, with its own passphrase file."""
    import re
    import shlex

    text = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    loop = re.search(r"for service in ([a-z ]+); do\n(.*?)\ndone", text, re.S)
    assert loop is not None
    argv = shlex.split(loop.group(2).replace("\\\n", " ").replace('"$PWD', '"/srv'))
    assert argv[:5] == ["docker", "compose", "run", "--rm", "--no-deps"]
    mount = argv[argv.index("-v") + 1]
    host, target, mode = mount.split(":")
    assert (Path(host).name, mode) == ("directory.json", "ro")
    assert argv[argv.index("-v") + 2] == "$service"
    command = argv[argv.index("-v") + 3 :]
    assert command == ["keys", "import", target]
    _, compose = rendered

    def target_of(volume: str) -> str:  # host paths hold ':' (${ACCORD_KEYS_DIR:-./keys})
        return volume.removesuffix(":ro").removesuffix(":rw").rsplit(":", 1)[1]

    for name in loop.group(1).split():
        service = compose["services"][name]
        env = service["environment"]
        keys = env["ACCORD_KEYSTORE__PATH"]
        (volume,) = [v for v in service["volumes"] if target_of(v) == keys]
        assert volume.endswith(f"/{name}:{keys}"), volume  # its own, and not read-only
        secret = env["ACCORD_KEYSTORE__PASSPHRASE_FILE"].removeprefix("/run/secrets/")
        assert secret == f"keystore-passphrase-{name}"
        assert secret in {s["target"] for s in service["secrets"]}
        # The directory lands where no other mount of the service hides it.
        inside = [target_of(v) for v in service["volumes"]] + service.get("tmpfs", [])
        assert not [m for m in inside if Path(target).is_relative_to(m)], name
        assert "entrypoint" not in service  # the image's: `accord`
