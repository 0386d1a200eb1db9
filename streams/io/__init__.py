"""Kafka and Avro: codecs, schema registry, producing, reading the log, topics, consumer lag."""
