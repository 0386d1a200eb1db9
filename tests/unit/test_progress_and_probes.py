"""Progress lines off a terminal only; reachability probes answer with a reason, at once."""

from __future__ import annotations

import io
import time

import pytest

from streams import progress as _progress
from streams.services import probes
from streams.services.embedded import free_port
from streams.settings import Settings


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_periodic_lines_only_when_stderr_is_not_a_terminal(
    tty: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _Stream(tty)
    monkeypatch.setattr(_progress, "_stderr", lambda: stream)
    _progress.configure(0.02)
    try:
        with _progress.Progress("copying", 10, "pages") as bar:
            for _ in range(10):
                bar.update(1)
                time.sleep(0.01)
            time.sleep(0.1)
    finally:
        _progress.configure(_progress.DEFAULT_INTERVAL_S)
    lines = [x for x in stream.getvalue().splitlines() if x.startswith("copying: ")]
    if tty:
        assert not lines  # the bar draws instead
    else:
        assert lines and lines[-1].startswith("copying: 10 of 10 pages (100%) after 0 s")


def test_a_closed_port_is_refused_at_once_with_the_reason() -> None:
    port = free_port()
    started = time.monotonic()
    problem = probes.kafka_problem(f"127.0.0.1:{port}", timeout=5.0)
    assert problem == f"connection to 127.0.0.1:{port} refused"
    assert time.monotonic() - started < 5.0  # not the whole timeout: refused is an answer
    assert probes.redis_problem(Settings(redis_url=f"redis://127.0.0.1:{port}/0"), 5.0) == (
        "connection refused"
    )


def test_addresses_and_advice() -> None:
    assert probes._addresses("PLAINTEXT://a:1, b") == [("a", 1), ("b", 9092)]
    assert probes.kafka_problem("a:notaport") == "cannot parse the address list 'a:notaport'"
    with pytest.raises(probes.ServiceUnavailable, match=r"`streamrec up`.*REDIS_URL"):
        probes.require(
            Settings(kafka_port=free_port(), redis_port=free_port()), kafka=False, redis=True
        )
