"""``python -m broker.devkafka``: fetch Kafka's jars into Accord's cache (``make kafka-jars``).

``--cached`` fetches nothing: exit 0 when the jars are there, 1 when they are not, so that
``make`` installs Maven only when it will be needed. A failure is one line on stderr, as
from ``accord``, never a traceback.
"""

from __future__ import annotations

import sys

from broker.config import load_settings
from broker.devkafka._fetch import ensure_kafka_jars, kafka_jars_cached
from broker.errors import AccordError


def main(argv: list[str]) -> int:
    if argv not in ([], ["--cached"]):
        sys.stderr.write("usage: python -m broker.devkafka [--cached]\n")
        return 2
    try:
        home = load_settings().home
        if argv:
            return 0 if kafka_jars_cached(home) else 1
        sys.stdout.write(f"kafka jars: {ensure_kafka_jars(home)}\n")
    except (AccordError, OSError) as exc:
        if argv:
            return 1  # the fetch that follows says what is wrong
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            sys.stderr.write(f"kafka-jars: {exc.strerror or exc}{where}\n")
        else:
            sys.stderr.write(f"kafka-jars: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
