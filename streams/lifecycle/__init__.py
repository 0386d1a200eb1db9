"""A model's life in service: list its versions, promote, roll back, follow.

``streamrec models`` and the scorer's ``/models`` endpoints act through
:mod:`streams.lifecycle.model_actions` on what :mod:`streams.state.serving` records.
"""
