"""Kafka-facing half of streamrec: settings, Avro codec, services, scorer, CLI."""
