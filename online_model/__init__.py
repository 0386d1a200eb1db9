"""Model-facing half of streamrec: online recommenders, evaluation and snapshots.

Nothing in this package imports a Kafka client.
"""
