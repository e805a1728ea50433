"""A faust-streaming passthrough app (run as a subprocess) for bench_kafka and the faust test.

``PASS_MODE=event``: one ``await topic.send()`` per record from ``async for`` (key and value);
``PASS_MODE=take``: ``stream.take(500, within=0.05)`` batches, sends not awaited one by one.
``PASS_CLIENT_FILE``: a librdkafka client file (``accord kafka up`` writes them) to log in
with over TLS; without it, PLAINTEXT.
"""

import asyncio
import os
import ssl

import faust


def _credentials() -> faust.SASLCredentials | None:
    path = os.environ.get("PASS_CLIENT_FILE")
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:  # noqa: PTH123  # a plain script, no pathlib needed
        conf = dict(line.strip().split("=", 1) for line in fh if "=" in line)
    ca = conf.get("ssl.ca.location")
    if ca is not None:  # a relative CA is beside the client file, as Accord writes them
        ca = os.path.join(os.path.dirname(path), ca)  # noqa: PTH118, PTH120  # as above
    return faust.SASLCredentials(
        username=conf["sasl.username"],
        password=conf["sasl.password"],
        ssl_context=ssl.create_default_context(cafile=ca),
        mechanism=conf["sasl.mechanisms"],
    )


app = faust.App(
    os.environ["PASS_APP_ID"],
    broker=f"kafka://{os.environ['PASS_BOOTSTRAP']}",
    broker_credentials=_credentials(),
    store="memory://",
    web_enabled=False,
    topic_replication_factor=1,
    topic_partitions=int(os.environ.get("PASS_PARTITIONS", "3")),
    datadir=os.environ["PASS_DATADIR"],
    stream_buffer_maxsize=8192,
    broker_max_poll_records=2000,
    producer_linger_ms=5,
)
src = app.topic(os.environ["PASS_SRC"], value_serializer="raw", key_serializer="raw")
dst = app.topic(os.environ["PASS_DST"], value_serializer="raw", key_serializer="raw")
MODE = os.environ.get("PASS_MODE", "event")


@app.agent(src)
async def passthrough(stream: faust.StreamT) -> None:
    if MODE == "take":
        async for batch in stream.take(500, within=0.05):
            await asyncio.gather(*[dst.send(value=v) for v in batch])
    else:
        async for key, value in stream.items():
            await dst.send(key=key, value=value)


if __name__ == "__main__":
    app.main()
