"""What a reader of the log does with a message that carries an error instead of a record."""

from __future__ import annotations

import logging
from typing import Any

from streams.errors import ServiceError

log = logging.getLogger(__name__)


def is_record(msg: Any, reader: str) -> bool:
    """True for a record; False for an error message, which is logged and skipped.

    A fatal error ends the reader (:class:`ServiceError`): nothing more can be read through
    that consumer. End-of-partition events are not errors and are skipped silently.
    """
    err = msg.error()
    if err is None:  # before the import below: this runs for every record read
        return True
    from confluent_kafka import KafkaError

    if err.fatal():
        raise ServiceError(f"fatal consumer error: {err}")
    if err.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error reader=%s error=%s", reader, err)
    return False
