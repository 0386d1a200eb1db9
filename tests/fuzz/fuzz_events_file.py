"""Fuzz the page-view file reader (CSV and JSONL, plain or gzipped).

The first byte of an input picks the format, whether bad rows are skipped, and how the
rest reaches the file: as it is (``views.csv``, ``views.jsonl``), gzipped by the harness
(``views.csv.gz``: the fuzzer's bytes are the decompressed text) or as the raw bytes of a
``.gz`` file (a truncated or corrupt archive). :func:`read_events` must answer an
:class:`~online_model.errors.InputError` naming the problem, or events in time order
whose ids ``streamrec produce`` can send (UTF-8 strings).
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from tests.fuzz.harness import check, instrumented, main

with instrumented(__name__):
    from online_model.data.events_file import read_events
    from online_model.errors import InputError

#: What ``streamrec train/evaluate/produce`` catch and report as the file's fault.
ALLOWED: tuple[type[BaseException], ...] = (InputError,)

_DIR = Path(tempfile.mkdtemp(prefix="fuzz-events-"))
#: mode % 6 -> (file name, how the rest of the input becomes its bytes)
_MODES = (
    ("views.csv", "plain"),
    ("views.jsonl", "plain"),
    ("views.csv.gz", "gzip"),
    ("views.jsonl.gz", "gzip"),
    ("views.csv.gz", "plain"),
    ("views.jsonl.gz", "plain"),
)


def write_input(data: bytes, directory: Path = _DIR) -> tuple[Path, bool]:
    """The file an input describes, and whether bad rows are skipped."""
    mode = data[0] if data else 0
    name, how = _MODES[mode % len(_MODES)]
    body = data[1:]
    path = directory / name
    path.write_bytes(gzip.compress(body, 1, mtime=0) if how == "gzip" else body)
    return path, bool(mode & 0x80)


def one_input(data: bytes) -> None:
    path, skip_bad = write_input(data)
    log = read_events(path, skip_bad=skip_bad)
    assert log.events, "an empty file must be refused"
    previous = None
    for view in log.events:
        assert isinstance(view.user_id, str) and isinstance(view.page_id, str), view
        # produce sends them as Avro strings and the user id as the key: UTF-8
        view.user_id.encode(), view.page_id.encode(), (view.session_id or "").encode()
        assert -(2**63) <= view.ts_ms < 2**63, view
        assert previous is None or previous <= view.ts_ms, "not in time order"
        previous = view.ts_ms


def run(data: bytes) -> None:
    check(one_input, ALLOWED, data)


if __name__ == "__main__":
    main(one_input, ALLOWED)
