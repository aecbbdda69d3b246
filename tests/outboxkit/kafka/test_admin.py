"""outboxkit.kafka.admin's pure parts: which __consumer_offsets partition keeps a group."""

from __future__ import annotations

import pytest

from outboxkit.kafka.admin import offsets_partition


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
