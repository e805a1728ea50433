"""A faust-streaming passthrough app for bench_kafka (run as a subprocess).

``BENCH_MODE=event``: one ``await topic.send()`` per record from ``async for``;
``BENCH_MODE=take``: ``stream.take(500, within=0.05)`` batches, sends not awaited one by one.
"""

import asyncio
import os

import faust

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{os.environ['BENCH_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    topic_replication_factor=1,
    topic_partitions=3,
    datadir=os.environ["BENCH_DATADIR"],
    stream_buffer_maxsize=8192,
    broker_max_poll_records=2000,
    producer_linger_ms=5,
)
src = app.topic(os.environ["BENCH_SRC"], value_serializer="raw", key_serializer="raw")
dst = app.topic(os.environ["BENCH_DST"], value_serializer="raw", key_serializer="raw")
MODE = os.environ.get("BENCH_MODE", "event")


@app.agent(src)
async def passthrough(stream: faust.StreamT) -> None:
    if MODE == "take":
        async for batch in stream.take(500, within=0.05):
            await asyncio.gather(*[dst.send(value=v) for v in batch])
    else:
        async for value in stream:
            await dst.send(value=value)


if __name__ == "__main__":
    app.main()
