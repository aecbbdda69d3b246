"""Relays that move committed outbox events to Kafka: the polling daemon and Debezium CDC."""
