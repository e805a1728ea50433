"""`accord deploy render`: renders from the bundle, warns for a trial, one line on a mistake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from broker.kafka import read_client_file

REPO = Path(__file__).resolve().parents[3]
Run = Callable[[list[str]], tuple[int, str, str]]
#: The parties' addresses, which a Kubernetes render must be given for Kafka's external listener.
RANGE = ["--kafka-source-range", "192.0.2.0/24"]


def test_render_writes_the_compose_deployment_and_its_secrets(run_cli: Run, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    code, stdout, stderr = run_cli(
        ["deploy", "render", "--policies", str(REPO / "policies"), "--out", str(out)]
    )
    assert code == 0, stderr
    assert (out / "compose.yaml").is_file()
    assert (out / "kafka" / "server-3.properties").is_file()
    assert "secret file(s)" in stdout
    assert "WARNING" not in stderr  # three brokers: production
    code, stdout, _ = run_cli(
        ["deploy", "render", "--policies", str(REPO / "policies"), "--out", str(out)]
    )
    assert code == 0
    assert "secret file(s)" not in stdout  # a re-render makes none


@pytest.mark.parametrize(("first", "then"), [("localhost", "kafka.b.example"),
                                            ("127.0.0.1", "kafka.b.example"),
                                            ("kafka.a.example", "kafka.b.example"),
                                            ("kafka.a.example", "localhost")])  # fmt: skip
def test_a_render_for_another_external_host_over_old_secrets_is_refused(
    run_cli: Run, tmp_path: Path, first: str, then: str
) -> None:
    """The certificates and client files kept from the first render name its host: the new
    one would advertise another, and every agency's TLS hostname check would fail."""
    out = tmp_path / "deploy"
    render = ["deploy", "render", "--policies", str(REPO / "policies"), "--out", str(out),
              "--brokers", "1", "--external-host"]  # fmt: skip
    assert run_cli([*render, first])[0] == 0
    code, _, stderr = run_cli([*render, then])
    assert code == 2
    made_for = first if "." in first and first != "127.0.0.1" else "localhost or 127.0.0.1"
    assert f"made for --external-host {made_for}, not {then}" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert run_cli([*render, first])[0] == 0  # the same host renders again


def test_a_trial_with_one_broker_warns(run_cli: Run, tmp_path: Path) -> None:
    code, _, stderr = run_cli(
        ["deploy", "render", "--policies", str(REPO / "policies"), "--brokers", "1",
         "--out", str(tmp_path / "d")]
    )  # fmt: skip
    assert code == 0
    assert "WARNING: 1 broker(s): a trial" in stderr


def test_mistakes_are_one_line_and_render_nothing(run_cli: Run, tmp_path: Path) -> None:
    for argv in (
        ["deploy", "render", "--policies", str(tmp_path / "nope"), "--out", str(tmp_path / "a")],
        ["deploy", "render", "--target", "swarm", "--out", str(tmp_path / "b")],
        ["deploy", "render", "--brokers", "0", "--out", str(tmp_path / "c")],
    ):
        code, _, stderr = run_cli(argv)
        assert code != 0
        assert stderr.count("\n") == 1, stderr
        assert stderr.startswith("accord: error:")
        assert "Traceback" not in stderr
    assert not any(tmp_path.iterdir())


def test_policy_impact_mistakes_are_one_line_before_anything_is_read(
    run_cli: Run, tmp_path: Path
) -> None:
    """A missing bundle or an unreadable --since stops at once: no Kafka, no keys touched."""
    for argv in (
        ["policy", "impact", "--policies", str(tmp_path / "nope")],
        ["policy", "impact", "--policies", str(REPO / "policies"),
         "--current", str(REPO / "policies"), "--since", "last week"],
        ["policy", "impact", "--policies", str(REPO / "policies"), "--processes", "0"],
    ):  # fmt: skip
        code, stdout, stderr = run_cli(argv)
        assert code != 0
        assert stdout == ""
        assert stderr.count("\n") == 1, stderr
        assert stderr.startswith("accord: error:")


def test_a_rendered_partys_client_file_names_the_ca_beside_it_a_services_the_mounted_one(
    run_cli: Run, tmp_path: Path
) -> None:
    """A party is handed its files and kafka-ca.pem; the container path meant nothing to it."""
    out = tmp_path / "d"
    assert run_cli(["deploy", "render", "--policies", str(REPO / "policies"), "--out", str(out),
                    "--brokers", "1"])[0] == 0  # fmt: skip
    secrets = out / "secrets"
    assert read_client_file(secrets / "wmp.librdkafka.conf")["ssl.ca.location"] == "kafka-ca.pem"
    worker = read_client_file(secrets / "worker.librdkafka.conf")["ssl.ca.location"]
    assert worker == "/run/secrets/kafka-ca.pem"


@pytest.mark.parametrize(
    "bad",
    [
        ["--external-host", "https://accord.example.org"],
        ["--external-host", "bad host!"],
        ["--external-host", "kafka.example.org:9094"],
        ["--external-host", "::1"],
        # Listening addresses, not ones to connect to: Kafka refuses to advertise them.
        ["--external-host", "0.0.0.0"],  # noqa: S104  # refused, never bound
        ["--external-host", "::"],
        ["--external-host", "0x0"],
        ["--external-host", "0x7f.1"],
        ["--external-host", "224.0.0.1"],
        ["--target", "kubernetes", "--namespace", "Bad_NS"],
        ["--target", "kubernetes", "--cluster", "a b"],
        ["--target", "kubernetes", "--cluster", "c" * 48],
        ["--target", "kubernetes", "--cluster", "c" * 39],
        ["--target", "kubernetes", "--cluster", "9accord"],
        ["--image", "bad image:tag"],
        ["--target", "kubernetes", "--image", "Accord:1"],
    ],
    ids=" ".join,
)
def test_a_bad_name_is_refused_in_one_line_before_any_secret_or_file_is_made(
    run_cli: Run, tmp_path: Path, bad: list[str]
) -> None:
    """A scheme in --external-host would go into advertised.listeners, a space into a
    certificate; a namespace, cluster or image Kubernetes refuses would only fail at apply."""
    out = tmp_path / "deploy"
    code, stdout, stderr = run_cli(
        ["deploy", "render", "--policies", str(REPO / "policies"), "--out", str(out), *bad]
    )
    assert code != 0
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("accord: error: --")
    assert "Traceback" not in stderr
    assert not out.exists()  # no secrets/, no .accord-render
    assert stdout == ""


@pytest.mark.parametrize(
    ("args", "says"),
    [([], "--kafka-source-range CIDR is required with --target kubernetes"),
     (["--kafka-source-range", "192.0.2.0/33"], "not an address range in CIDR notation"),
     (["--kafka-source-range", "partners.example.org"], "not an address range"),
     (["--kafka-source-range", "192.0.2.7/24"], "give the range 192.0.2.0/24"),
     (["--target", "compose", "--kafka-source-range", "192.0.2.0/24"], "kubernetes only")],
)  # fmt: skip
def test_kafkas_external_listener_is_never_rendered_open_to_everyone_by_default(
    run_cli: Run, tmp_path: Path, args: list[str], says: str
) -> None:
    """Strimzi's external listener is a cloud load balancer: without the parties' ranges it
    would be on the internet. A Compose render restricts nothing with them: refused too."""
    out = tmp_path / "d"
    target = [] if "--target" in args else ["--target", "kubernetes"]
    code, stdout, stderr = run_cli(
        ["deploy", "render", "--policies", str(REPO / "policies"), "--out", str(out),
         *target, *args]
    )  # fmt: skip
    assert code != 0
    assert stderr.count("\n") == 1, stderr
    assert says in stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    assert not out.exists()


def test_the_external_listener_admits_exactly_the_ranges_given(
    run_cli: Run, tmp_path: Path
) -> None:
    out = tmp_path / "k"
    code, _, stderr = run_cli(
        ["deploy", "render", "--policies", str(REPO / "policies"), "--out", str(out),
         "--target", "kubernetes", "--kafka-source-range", "192.0.2.0/24",
         "--kafka-source-range", "198.51.100.7", "--kafka-source-range", "2001:db8::/32",
         "--kafka-source-range", "192.0.2.0/24"]
    )  # fmt: skip
    assert code == 0, stderr
    kafka = yaml.safe_load((out / "kafka" / "kafka.yaml").read_text())
    (external,) = [ls for ls in kafka["spec"]["kafka"]["listeners"] if ls["name"] == "external"]
    assert external["type"] == "loadbalancer"
    assert external["configuration"]["loadBalancerSourceRanges"] == [
        "192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32"]  # fmt: skip


@pytest.mark.parametrize(
    "good",
    [["--external-host", "kafka.example.org"], ["--external-host", "192.0.2.7"],
     ["--image", "registry.example:5000/team/accord-broker:0.1.0"],
     ["--target", "kubernetes", "--namespace", "accord-prod", "--cluster", "kafka-1", *RANGE],
     ["--target", "kubernetes", "--namespace", "9accord", "--cluster", "c" * 38, *RANGE]],
)  # fmt: skip
def test_good_names_render(run_cli: Run, tmp_path: Path, good: list[str]) -> None:
    code, _, stderr = run_cli(
        ["deploy", "render", "--policies", str(REPO / "policies"), "--out", str(tmp_path / "d"),
         "--brokers", "1", *good]
    )  # fmt: skip
    assert code == 0, stderr


def test_a_render_with_other_partitions_into_the_same_folder_is_refused_in_one_line(
    run_cli: Run, tmp_path: Path
) -> None:
    render = ["deploy", "render", "--policies", str(REPO / "policies"), "--target",
              "kubernetes", "--out", str(tmp_path / "k"), *RANGE]  # fmt: skip
    assert run_cli([*render, "--partitions", "3"])[0] == 0
    code, stdout, stderr = run_cli([*render, "--partitions", "6"])
    assert code == 2
    assert stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert "was rendered with --partitions 3" in stderr
    # Never a fresh folder applied to the same cluster: Strimzi would add the partitions.
    assert "a new deployment (a new namespace and cluster) into a new --out folder" in stderr


def test_a_kubernetes_re_render_without_a_party_and_a_desk_prints_the_deletes_apply_never_does(
    run_cli: Run, tmp_path: Path
) -> None:
    """`kubectl apply -k` deletes nothing: an offboarded party kept its login and ACLs."""
    import shutil

    from broker.topics import deliver

    hub = "cog-great-bridge"
    bundle = tmp_path / "policies"
    shutil.copytree(REPO / "policies", bundle)
    with (bundle / "parties.yaml").open("a", encoding="utf-8") as fh:
        fh.write(f"  {hub}:\n    name: Great Bridge Community Operating Group\n"
                 "    kind: hub\n    localities: [\"DY4 7\"]\n")  # fmt: skip
    out = tmp_path / "k"
    render = ["deploy", "render", "--target", "kubernetes", "--out", str(out),
              "--namespace", "partners", *RANGE]  # fmt: skip
    code, _, stderr = run_cli([*render, "--policies", str(bundle), "--desk", "sandwell-coord"])
    assert code == 0, stderr
    code, stdout, stderr = run_cli([*render, "--policies", str(REPO / "policies")])
    assert code == 0, stderr
    assert f"removed kafka/users/{hub}.yaml (no longer part of the deployment)" in stdout
    assert "kubectl apply -k deletes nothing" in stdout
    commands = [ln.strip() for ln in stdout.splitlines()
                if ln.strip().startswith("kubectl -n") and " delete " in ln]  # fmt: skip
    deletes = [c.split("   #")[0] for c in commands]
    # The login first, the data last.
    assert deletes[0] == f"kubectl -n partners delete kafkauser {hub}"
    assert "its login and its ACLs" in commands[0]
    topic = f"kubectl -n partners delete kafkatopic {deliver(hub)}"
    assert topic in deletes
    assert "any the recipient has not read are lost" in commands[deletes.index(topic)]
    for name in ("desk-sandwell-coord", "flags-sandwell-coord"):
        assert f"kubectl -n partners delete deployment accord-{name}" in deletes
        assert f"kubectl -n partners delete networkpolicy accord-ingress-{name}" in deletes
        assert f"kubectl -n partners delete service accord-{name}-ops" in deletes
        claim = f"kubectl -n partners delete persistentvolumeclaim accord-{name}"
        assert claim in deletes[-6:-4]
    # Then the keystore Secrets of each party whose login or desk went, after archiving.
    assert deletes[-4:] == [
        f"kubectl -n partners delete secret accord-keystore-{p}{s} --ignore-not-found"
        for p in (hub, "sandwell-coord") for s in ("", "-passphrase")
    ]  # fmt: skip
    # Nothing still rendered is named.
    assert not any("accord-worker" in c or "kafkauser worker" in c for c in deletes)
    code, stdout, _ = run_cli([*render, "--policies", str(REPO / "policies")])
    assert code == 0
    assert " delete " not in stdout  # nothing removed, nothing to delete


def test_a_kubernetes_render_prints_the_secrets_it_needs_and_does_not_make_and_their_check(
    run_cli: Run, tmp_path: Path
) -> None:
    """Every pod mounts its keystore and passphrase Secrets, none optional: applied before
    they exist, every worker, the console and each desk stop (docs/deployment.md)."""
    out = tmp_path / "k"
    code, stdout, stderr = run_cli(
        ["deploy", "render", "--policies", str(REPO / "policies"), "--target", "kubernetes",
         "--out", str(out), "--namespace", "partners", "--desk", "sandwell-coord", *RANGE]
    )  # fmt: skip
    assert code == 0, stderr
    lines = stdout.splitlines()
    start = lines.index(next(ln for ln in lines if ln.startswith("before applying")))
    assert "neither the render nor Strimzi makes" in lines[start]
    names = [f"accord-keystore-{p}{s}" for p in ("console", "indexer", "sandwell-coord", "worker")
             for s in ("", "-passphrase")]  # fmt: skip
    needed = ["accord-audit-db", *names]
    assert [ln.split()[0] for ln in lines[start + 1 : start + 1 + len(needed)]] == needed
    assert lines[start + 1] == "  accord-audit-db (url)"
    assert "  accord-keystore-sandwell-coord-passphrase (passphrase)" in lines
    assert lines[start + 2 + len(needed)] == (
        f"  kubectl -n partners get secret {' '.join(needed)}"
    )
    # Strimzi's own (a login's password, the cluster CA) are not the platform team's to make.
    assert "accord-cluster-ca-cert" not in stdout
    assert "  sandwell-coord" not in stdout


def test_a_compose_render_prints_no_kubernetes_secrets(run_cli: Run, tmp_path: Path) -> None:
    code, stdout, _ = run_cli(["deploy", "render", "--policies", str(REPO / "policies"),
                               "--brokers", "1", "--out", str(tmp_path / "c")])  # fmt: skip
    assert code == 0
    assert "kubectl" not in stdout


def _docs_offboarding_sample() -> list[str]:
    text = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = text[text.index("## Onboarding and offboarding a party") :]
    block = section[section.index("  ```text\n") + len("  ```text\n") :]
    block = block[: block.index("  ```\n")]
    return [line.removeprefix("  ") for line in block.splitlines()]


def test_the_documented_offboarding_output_is_what_the_render_prints(
    run_cli: Run, tmp_path: Path
) -> None:
    """Line for line, in its order (the removed files are listed sorted: topics first)."""
    import shutil

    bundle = tmp_path / "policies"
    shutil.copytree(REPO / "policies", bundle)
    with (bundle / "parties.yaml").open("a", encoding="utf-8") as fh:
        fh.write("  cog-great-bridge:\n    name: Great Bridge Community Operating Group\n"
                 "    kind: hub\n    localities: [\"DY4 7\"]\n")  # fmt: skip
    out = tmp_path / "accord-k8s"
    render = ["deploy", "render", "--target", "kubernetes", "--out", str(out), *RANGE]
    assert run_cli([*render, "--policies", str(bundle)])[0] == 0
    code, stdout, stderr = run_cli([*render, "--policies", str(REPO / "policies")])
    assert code == 0, stderr
    printed = stdout.splitlines()[1:]  # after "rendered N file(s) ... in <out>"
    assert _docs_offboarding_sample() == printed
