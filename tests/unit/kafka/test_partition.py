"""``partition_for`` places a key where the Java client and aiokafka's ``send`` would."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from broker.kafka import partition_for

# org.apache.kafka.common.utils.UtilsTest#testMurmur2: key -> the Java client's (signed) hash.
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("key", "java_hash"), JAVA_MURMUR2.items())
@pytest.mark.parametrize("count", [1, 3, 4, 12, 1000])
def test_a_key_lands_where_the_java_clients_hash_puts_it(
    key: str, java_hash: int, count: int
) -> None:
    partitions = list(range(count))
    assert partition_for(key.encode(), partitions) == (java_hash & 0x7FFFFFFF) % count


@given(key=st.binary(max_size=300), count=st.integers(min_value=1, max_value=64))
def test_every_key_lands_where_aiokafkas_send_puts_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_a_key_picks_from_the_partition_ids_given_not_their_positions() -> None:
    ids = [3, 5, 8]
    assert partition_for(b"foobar", ids) == ids[(JAVA_MURMUR2["foobar"] & 0x7FFFFFFF) % 3]


def test_no_key_may_land_on_any_partition_given() -> None:
    assert {partition_for(None, [2, 7]) for _ in range(200)} == {2, 7}
