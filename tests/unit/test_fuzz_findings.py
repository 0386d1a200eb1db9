"""What the fuzzers found (tests/fuzz/regressions/), each as a plain test of the fix.

tests/unit/test_fuzz.py replays the committed inputs through their harnesses; these
say what each input was and what is promised instead.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from online_model.data.events_file import read_events
from online_model.errors import InputError, SnapshotFormatError
from online_model.persist.model_file import state_from_tensors
from streams.catalog.pages_file import read_pages


def _corrupt_gzip(text: bytes) -> bytes:
    """A .gz whose header is fine and whose deflate stream is not (zlib.error, not OSError)."""
    data = bytearray(gzip.compress(text, mtime=0))
    data[10:14] = b"\xff\xff\xff\xff"
    return bytes(data)


def test_a_corrupt_gzipped_events_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "views.csv.gz"
    path.write_bytes(_corrupt_gzip(b"user_id,page_id,ts_ms\nu1,p1,1\n" * 20))
    with pytest.raises(InputError, match="cannot read"):
        read_events(path)


@pytest.mark.parametrize("cut", [_corrupt_gzip, lambda text: gzip.compress(text)[:-9]])
def test_a_corrupt_or_truncated_gzipped_catalog_is_an_input_error(tmp_path: Path, cut) -> None:
    path = tmp_path / "pages.csv.gz"
    path.write_bytes(cut(b"page_id,title\n" + b"p1,Home\n" * 20))
    with pytest.raises(InputError, match="cannot read"):
        read_pages(path)


def test_a_string_table_whose_offsets_do_not_span_its_bytes_is_a_snapshot_format_error() -> None:
    tensors = save(
        {
            "pages.utf8": np.frombuffer(b"homenews", dtype=np.uint8).copy(),
            "pages.offsets": np.array([0, 4, 9], dtype=np.int64),
        }
    )
    with pytest.raises(SnapshotFormatError, match="string table 'pages' is malformed"):
        state_from_tensors(tensors, {})


# JSON nested past the interpreter's recursion limit: json raises RecursionError (not a
# ValueError) there, which escaped every parser that caught only ValueError.
DEEP = b"[" * 5000


def test_a_deeply_nested_jsonl_row_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "views.jsonl"
    path.write_bytes(DEEP + b'\n{"user_id": "u1", "page_id": "p1", "ts_ms": 1}\n')
    with pytest.raises(InputError, match="line 1: invalid JSON"):
        read_events(path)
    assert len(read_events(path, skip_bad=True)) == 1


def test_a_deeply_nested_promote_body_is_refused() -> None:
    from streams.scorer.web import parse_promote_body

    assert parse_promote_body(DEEP) is None


def test_a_deeply_nested_signed_manifest_is_a_snapshot_format_error() -> None:
    from online_model.persist.snapshot import load_snapshot
    from tests.fuzz.fuzz_snapshot import KEY, frame

    with pytest.raises(SnapshotFormatError, match="bad snapshot manifest"):
        load_snapshot(frame(DEEP, b""), KEY)


@pytest.mark.parametrize(
    "meta",
    [
        {"model_name": "m", "offsets": "x"},  # found: AttributeError from .items()
        {"model_name": "m", "offsets": {"t": {"0": 1e400}}},  # int(inf): OverflowError
        {"model_name": "m", "metrics": {"hit@10": 10**400}},  # float(big int): OverflowError
        {"model_name": "m", "version": "7"},  # later compared with an int: TypeError
        {"model_name": ["m"]},
    ],
)
def test_signed_metadata_of_the_wrong_shape_is_a_snapshot_format_error(meta: dict) -> None:
    import json

    from online_model.persist.snapshot import read_meta
    from tests.fuzz.fuzz_snapshot import KEY, frame

    with pytest.raises(SnapshotFormatError, match="bad snapshot metadata"):
        read_meta(frame(json.dumps({"meta": meta}).encode(), b""), KEY)
