"""Ctrl-C or SIGTERM during `streamrec produce`, at any moment, ends with the delivery report.

A KeyboardInterrupt raised inside a librdkafka call used to surface as ``SystemError``
(exit 1, no report) on loaded cores, and a Ctrl-C in the first half second as click's
``Aborted!``. The signal is sent from the first moment the program can catch it (its
handlers show in ``/proc/<pid>/status``; before that, Python itself is starting: ~40 ms,
up to ~0.3 s on busy cores) to mid-sending, with every core kept busy by spinners.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from tests.reliability.test_broker_outage import high_watermarks
from tests.support.outages import env_for, stopping, summary

ROWS = 20_000  # 20 s at --rate 1000: every signal below arrives before the end
# A moment is (what happened, seconds after it): the process started, it has installed
# its signal handlers (streamrec's first lines ran), page views are arriving on the topic.
START, HANDLERS, SENDING = "start", "handlers", "sending"
REPORT = re.compile(
    r"^interrupted by (SIGINT|SIGTERM): delivered (\d+) of (\d+) page views sent to \S+ "
    r"\((\d+) in the file\); (\d+) failed \{.*?\}; (\d+) not confirmed$",
    re.MULTILINE,
)


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_cores() -> Iterator[None]:
    """One spinning process per core, for the whole block (spinning when it starts)."""
    spinners = [
        multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
        for _ in range(os.cpu_count() or 2)
    ]
    for spinner in spinners:
        spinner.start()
    time.sleep(1.0)  # past their own start-up
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.join(5)


def _catches_sigterm(pid: int) -> bool:
    """The process has a SIGTERM handler: streamrec's first lines have run."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def _on_topic(settings: Settings) -> int:
    try:
        return high_watermarks(settings)
    except KeyError:  # the topic does not exist yet
        return 0


pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads signal masks from /proc"
)


@pytest.fixture
def views_csv(tmp_path: Path) -> Path:
    path = tmp_path / "views.csv"
    path.write_text(
        "user_id,page_id,ts_ms\n"
        + "".join(f"u{i % 97},p{i % 89},{1_700_000_000_000 + i}\n" for i in range(ROWS))
    )
    return path


@pytest.mark.parametrize(
    ("sig", "moment", "loaded"),
    [
        (signal.SIGINT, (HANDLERS, 0.0), True),  # the first moment it can be caught
        (signal.SIGINT, (HANDLERS, 0.0), False),
        (signal.SIGINT, (HANDLERS, 0.2), True),
        (signal.SIGINT, (START, 0.5), True),  # importing, reading the file, probing Kafka
        (signal.SIGINT, (START, 1.0), True),
        (signal.SIGINT, (SENDING, 0.0), True),  # inside poll() most of the time
        (signal.SIGINT, (SENDING, 0.0), False),
        (signal.SIGTERM, (HANDLERS, 0.0), True),
        (signal.SIGTERM, (START, 1.0), True),
        (signal.SIGTERM, (SENDING, 0.0), True),
    ],
    ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else str(v),
)
def test_a_signal_at_any_moment_ends_with_the_report_and_128_plus_the_signal(
    settings: Settings,
    settings_env: dict[str, str],
    tmp_path: Path,
    views_csv: Path,
    sig: signal.Signals,
    moment: tuple[str, float],
    loaded: bool,
) -> None:
    after, wait_s = moment
    load = busy_cores() if loaded else contextlib.nullcontext()
    with load:
        proc = ChildProcess.streamrec(
            ["produce", "--input", str(views_csv), "--rate", "1000"],
            env_for(settings, settings_env, STREAMREC_TOPIC_PAGE_VIEWS=settings.topic_page_views),
            tmp_path / "produce.log",
        )
        with stopping(proc):
            if after == HANDLERS:
                wait_for(lambda: _catches_sigterm(proc.popen.pid), 30, "signal handlers", 0.002)
            elif after == SENDING:
                wait_for(lambda: _on_topic(settings) > 0, 60, "page views on the topic")
            time.sleep(wait_s)
            assert proc.alive(), proc.output()
            proc.popen.send_signal(sig)
            proc.popen.wait(30)  # one signal only: a second one would cut the grace short
            code = proc.stop()
    out = proc.output()
    match = REPORT.search(out)
    summary(
        "produce_interrupt",
        signal=sig.name,
        moment=f"{after}+{wait_s}s",
        loaded=loaded,
        exit_code=code,
        report=repr(match.group(0)[:120] if match else None),
    )
    assert "Traceback" not in out and "Aborted!" not in out, out[-3000:]
    assert code == 128 + sig, out[-3000:]
    assert match is not None, out[-3000:]
    name, delivered, sent, in_file, failed, pending = match.groups()
    assert name == sig.name
    assert int(in_file) == ROWS
    assert int(delivered) + int(failed) + int(pending) == int(sent) < ROWS
    if after == SENDING:
        assert int(delivered) > 0
