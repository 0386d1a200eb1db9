"""How a model's learned state is laid out, independent of any model or file.

* :mod:`~online_model.state.arrays`: :class:`ModelState` (JSON values, named numpy
  arrays, string tables) and the helpers models build it with.
* :mod:`~online_model.state.registration`: which classes may be rebuilt from a file, and
  the name a file records for each.
* :mod:`~online_model.state.params`: constructor parameters as JSON.

Nothing here imports a model; models and file formats import this.
"""

from online_model.state.arrays import (
    ARRAY_DTYPES,
    ModelState,
    StateNotExportable,
    check_array,
    check_indptr,
    check_rows,
    decode_strings,
    encode_strings,
    id_table,
    indptr_of,
    rows_of,
    stack_rows,
    take_rows,
)
from online_model.state.params import canonical_json, json_params
from online_model.state.registration import (
    StoresState,
    TracksChanges,
    class_name,
    delta_class,
    exports_state,
    registered_class,
    stores_state,
    tracks_changes,
    tracks_deltas,
)

__all__ = [
    "ARRAY_DTYPES",
    "ModelState",
    "StateNotExportable",
    "StoresState",
    "TracksChanges",
    "canonical_json",
    "check_array",
    "check_indptr",
    "check_rows",
    "class_name",
    "decode_strings",
    "delta_class",
    "encode_strings",
    "exports_state",
    "id_table",
    "indptr_of",
    "json_params",
    "registered_class",
    "rows_of",
    "stack_rows",
    "stores_state",
    "take_rows",
    "tracks_changes",
    "tracks_deltas",
]
