"""outboxkit.kafka.admin: which __consumer_offsets partition keeps a group (pure), and the
held-offsets check's answer when no broker answers."""

from __future__ import annotations

import pytest

from outboxkit.kafka import clients
from outboxkit.kafka.admin import held_offsets, offsets_partition
from outboxkit.kafka.errors import KafkaUnavailableError
from tests.isolated import free_port


@pytest.mark.parametrize(
    ("group", "partitions", "expected"),
    [
        # Expected values from Java: (group.hashCode() & 0x7fffffff) % partitions
        ("a", 10, 7),
        ("outboxkit-processor-restart-1d22ec43", 50, 39),
        ("\u00e9\u20ac\U0001f600x", 50, 6),  # outside the BMP: hashed as two UTF-16 code units
    ],
)
def test_the_offsets_partition_of_a_group_is_kafkas(group: str, partitions: int, expected: int) -> None:
    assert offsets_partition(group, partitions) == expected


def test_the_held_offsets_check_says_kafka_does_not_answer_instead_of_raising_its_timeout() -> None:
    nobody = clients.admin(f"127.0.0.1:{free_port()}")  # a loopback port nothing listens on
    with pytest.raises(KafkaUnavailableError, match="cannot ask for the committed offsets of group 'g'"):
        held_offsets(nobody, "g", [("t", 0)], timeout=1)
