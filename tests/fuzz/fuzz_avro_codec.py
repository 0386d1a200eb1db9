"""Fuzz the page-view decode path of the scorer and the trainer.

Each input is the value of one record of the page-views topic. It goes through
:meth:`AvroCodec.decode` (the compiled reader, or fastavro with schema resolution for an
older schema id) and, like the scorer's ``ScoringCore.decode``, the rules its
``context`` carries. A refusal must be a :class:`~streams.errors.DecodeError` or
:class:`~streams.errors.SchemaViolation` (which the scorer dead-letters and the trainer
counts); anything else is a crash. Two more checks: an accepted record has the
non-empty ids the codec promises, and the retrain fast path (``fields_reader``) never
accepts what ``decode`` refuses, nor reads other values.
"""

from __future__ import annotations

from tests.fuzz.harness import check, instrumented, main

with instrumented(__name__):
    from streams.catalog.rules import rules_from_context
    from streams.errors import DecodeError, SchemaViolation
    from streams.io.codec import PAGE_VIEW, AvroCodec
    from streams.retrain.view_fields import fields_reader

#: What the scorer and the trainer catch (BadRule is a SchemaViolation).
ALLOWED: tuple[type[BaseException], ...] = (DecodeError, SchemaViolation)

#: The scorer's default limit (STREAMREC_MAX_EVENT_BYTES).
CODEC = AvroCodec.bundled(PAGE_VIEW, max_bytes=64 * 1024)
FIELDS = fields_reader(CODEC)


def one_input(data: bytes) -> None:
    try:
        fast = FIELDS(data)
    except Exception as exc:  # the fast path answers None for anything it does not read
        raise AssertionError(f"fields_reader raised {exc!r}") from exc
    try:
        record = CODEC.decode(data)
    except ALLOWED:
        assert fast is None, f"fields_reader read {fast!r} from bytes decode refuses"
        raise
    for name in ("event_id", "user_id", "page_id"):
        assert isinstance(record[name], str) and record[name], name
    assert isinstance(record["ts"], int), record["ts"]
    if fast is not None:
        assert fast == (record["user_id"], record["page_id"], record["ts"]), (fast, record)
    context = record.get("context")
    if context:
        rules_from_context(context)


def run(data: bytes) -> None:
    """One input as the fuzzer runs it (allowed errors are refusals)."""
    check(one_input, ALLOWED, data)


if __name__ == "__main__":
    main(one_input, ALLOWED)
