"""Fuzz the catalog file reader (``streamrec catalog load``: CSV or JSONL, maybe gzipped).

The first byte of an input picks the format and how the rest reaches the file, as in
``fuzz_events_file``. :func:`read_pages` must answer an
:class:`~online_model.errors.InputError` naming the line, or Page records that the Page
codec encodes, keyed by their UTF-8 page id: ``catalog load`` checks every row before it
sends anything, so a page that fails to encode after the read is a finding too.
"""

from __future__ import annotations

from tests.fuzz.harness import check, instrumented, main

with instrumented(__name__):
    from online_model.errors import InputError
    from streams.catalog.pages_file import read_pages
    from streams.io.codec import PAGE, AvroCodec
    from tests.fuzz.fuzz_events_file import write_input  # instrumented: it imports the reader

#: What ``streamrec catalog load`` reports as the file's fault.
ALLOWED: tuple[type[BaseException], ...] = (InputError,)

CODEC = AvroCodec.bundled(PAGE)


def one_input(data: bytes) -> None:
    path, _ = write_input(data)
    pages = read_pages(path)
    assert pages, "an empty catalog must be refused"
    for page in pages:
        assert isinstance(page["page_id"], str) and page["page_id"], page
        CODEC.encode(page)  # what publish_pages does with it
        page["page_id"].encode()  # its key


def run(data: bytes) -> None:
    check(one_input, ALLOWED, data)


if __name__ == "__main__":
    main(one_input, ALLOWED)
