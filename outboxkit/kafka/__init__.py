"""The one Kafka layer of the toolkit: every component's producers, consumers and admin clients.

- `settings`: `KafkaSettings`, the cluster and its login (OUTBOX_KAFKA_...), for every client;
- `clients`: producer, transactional producer, consumer and admin factories with the defaults
  the guarantees rest on;
- `admin`: topics (create with settings, partition counts, a topic's settings);
- `catchup`: reading partitions to the end they had at the start, marker-safe;
- `group`: the consumer-group loop with a port for where positions are stored;
- `records`: Kafka record -> `ReceivedEvent` (the envelope, decoded once for every consumer);
- `dead_letter`: the dead-letter publisher.
"""

from outboxkit.kafka.settings import KafkaSettings

__all__ = ["KafkaSettings"]
