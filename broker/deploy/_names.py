"""The names ``accord deploy render`` is given, checked before anything is made.

Each one ends up somewhere that fails late and far from here: the external host in a broker's
certificate and advertised listener (a scheme or a port there breaks every client), the
namespace and the cluster in Kubernetes object names and Service host names, the image in
every pod and service. A render refuses a bad one in one line, before any secret or file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from broker.errors import UsageError

__all__ = [
    "check_cluster",
    "check_external_host",
    "check_image",
    "check_kafka_source_ranges",
    "check_namespace",
]

# RFC 1123 label: what Kubernetes requires of a namespace and of most object names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# RFC 1035 label: a Service's name, which must start with a letter.
_SERVICE_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# A DNS host name: labels of letters, digits and '-', not starting or ending with '-'.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")
# A part of an IPv4 address as inet_aton reads it: decimal, octal or 0x hexadecimal.
_NUMERIC_PART = re.compile(r"^(?:0[xX][0-9A-Fa-f]*|[0-9]+)$")
# The reference grammar of github.com/distribution/reference: [domain/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?$"
)
_IMAGE_NAME_MAX = 255


def _shown(value: str) -> str:
    # The value is the operator's own option, not personal data; repr() keeps a control
    # character or a space visible in the one line.
    return repr(value) if len(value) <= 80 else repr(value[:77] + "...")


def check_external_host(host: str) -> None:
    """A DNS name or an IPv4 address, as a certificate's subject alternative name and a
    listener's host: no scheme, no port, no path, never an address no client can connect to
    (``0.0.0.0``, ``::``, a multicast group, ``0x0``). IPv6 is refused: Kafka's listeners and the
    bootstrap list would need it bracketed, which the render does not do."""
    bad = f"--external-host {_shown(host)}"
    if "://" in host:
        raise UsageError(f"{bad}: give the host name alone, without a scheme")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address.is_unspecified or address.is_multicast:
            # Kafka refuses to advertise 0.0.0.0, and the client files and certificates made
            # for it would pin the folder to a name no client can reach.
            raise UsageError(f"{bad}: not an address clients can reach; give the host's name")
        if address.version == 6:
            raise UsageError(f"{bad}: an IPv6 address cannot be rendered; give a DNS name")
        return
    if ":" in host or "/" in host:
        raise UsageError(f"{bad}: give the host name alone, without a port or a path")
    name = host  # a trailing dot too is refused: the certificate would name it
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise UsageError(
            f"{bad}: not a DNS name (letters, digits and '-' in dot-separated labels) or an "
            "IPv4 address"
        )
    if labels[-1].isdigit() or all(_NUMERIC_PART.match(label) for label in labels):
        # Resolvers read 0x0 or 0x7f.1 as numbers (inet_aton): 0x0 is 0.0.0.0.
        raise UsageError(f"{bad}: not a DNS name or an IPv4 address in dotted decimal")


def _check_label(option: str, value: str) -> None:
    if not _LABEL.match(value):
        raise UsageError(
            f"{option} {_shown(value)}: not a DNS-1123 label (lower-case letters, digits and "
            "'-', starting and ending with a letter or digit, at most 63)"
        )


def check_namespace(namespace: str) -> None:
    _check_label("--namespace", namespace)


# Strimzi names Services after the cluster; the longest is the external listener's (9094,
# _strimzi.py) bootstrap. A Service's name is a DNS-1035 label: at most 63, a letter first.
_LONGEST_SERVICE_SUFFIX = "-kafka-external-bootstrap"
_CLUSTER_MAX = 63 - len(_LONGEST_SERVICE_SUFFIX)


def check_cluster(cluster: str) -> None:
    if not _SERVICE_LABEL.match(cluster) or len(cluster) > _CLUSTER_MAX:
        raise UsageError(
            f"--cluster {_shown(cluster)}: not a DNS-1035 label of at most {_CLUSTER_MAX} "
            "characters (lower-case letters, digits and '-', starting with a letter and ending "
            f"with a letter or digit): Strimzi names a Service "
            f"'<cluster>{_LONGEST_SERVICE_SUFFIX}' after it"
        )


def check_image(image: str) -> None:
    """A container image reference: ``[registry[:port]/]name[:tag][@digest]``."""
    name = image.split("@", 1)[0]
    if len(name) > _IMAGE_NAME_MAX or not _IMAGE.match(image):
        raise UsageError(
            f"--image {_shown(image)}: not an image reference ([registry/]name[:tag][@digest], "
            "the name in lower case)"
        )


def check_kafka_source_ranges(ranges: Sequence[str], *, kubernetes: bool) -> tuple[str, ...]:
    """``--kafka-source-range``: the address ranges the parties reach Kafka's external
    listener from, as CIDR (a bare address is its /32 or /128), each once, in the order given.

    Kubernetes needs one at least: the listener is a cloud load balancer, on the internet
    unless told whom to admit, and no default range is safe. ``0.0.0.0/0`` says "anyone"
    explicitly. Compose publishes the ports on the host, whose firewall decides: the option
    would restrict nothing there, so it is refused rather than believed."""
    option = "--kafka-source-range"
    if not kubernetes:
        if ranges:
            raise UsageError(
                f"{option}: kubernetes only; on Compose limit who reaches the host's Kafka "
                "ports (9094 on) with the host's firewall"
            )
        return ()
    if not ranges:
        raise UsageError(
            f"{option} CIDR is required with --target kubernetes: the address ranges the "
            "parties reach Kafka's external listener from (repeat for each; 0.0.0.0/0 admits "
            "the whole internet)"
        )
    out: list[str] = []
    for value in ranges:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise UsageError(
                f"{option} {_shown(value)}: not an address range in CIDR notation "
                "(192.0.2.0/24, 2001:db8::/32)"
            ) from None
        if network.network_address != ipaddress.ip_address(value.split("/")[0]):
            # 192.0.2.7/24 admits the whole /24: say so rather than guess which was meant.
            raise UsageError(
                f"{option} {_shown(value)}: has bits set past its prefix; give the range "
                f"{network.with_prefixlen}, or the address alone"
            )
        if network.with_prefixlen not in out:
            out.append(network.with_prefixlen)
    return tuple(out)
