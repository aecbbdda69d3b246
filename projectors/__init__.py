"""Consumer runtime: projections into read models with the Kafka offset as row version."""
