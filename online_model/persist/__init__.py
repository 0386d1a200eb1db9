"""Model files: the signed snapshot format, its deltas and the hybrid's batch-layer files.

Byte layout: docs/model-format.md. :mod:`~online_model.persist.model_file` turns a model
into a manifest section and safetensors and back; :mod:`~online_model.persist.snapshot`
adds the prefix and the MAC; :mod:`~online_model.persist.snapshot_delta` chains deltas;
:mod:`~online_model.persist.batch_layer_file` stores a hybrid's batch layer.
"""
