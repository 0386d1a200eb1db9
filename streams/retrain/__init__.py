"""``streamrec retrain``: batch retraining on Apache Spark (needs the ``spark`` extra).

:mod:`~streams.retrain.kafka_ranges` plans and reads offset ranges of the log,
:mod:`~streams.retrain.job` runs the Spark stages, :mod:`~streams.retrain.run` turns their
result into a judged snapshot. Importing this package does not import pyspark.
"""
