"""A minimal faust-streaming app: copies every record from SRC to DST (run as a subprocess)."""

import os

import faust

app = faust.App(
    os.environ["ECHO_APP_ID"],
    broker=f"kafka://{os.environ['ECHO_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    topic_replication_factor=1,
    topic_partitions=1,
    datadir=os.environ["ECHO_DATADIR"],
)
src = app.topic(os.environ["ECHO_SRC"], value_serializer="raw", key_serializer="raw")
dst = app.topic(os.environ["ECHO_DST"], value_serializer="raw", key_serializer="raw")


@app.agent(src)
async def echo(stream: faust.StreamT) -> None:
    async for key, value in stream.items():
        await dst.send(key=key, value=value)


if __name__ == "__main__":
    app.main()
