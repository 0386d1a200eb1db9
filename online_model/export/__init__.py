"""Models written for other tools: PMML (:mod:`~online_model.export.pmml`). The
safetensors export lives beside the snapshot format (:mod:`online_model.persist.snapshot`)."""
