"""One broker hop as a topic fills up: small record batches against large ones.

Run ``python -m bench.broker_growth [--rounds 6] [--rate 1000] [--seconds 5]``; writes
``bench/results/broker_growth.{json,md}``. On the broker the benches use (the embedded one
unless ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` are set), two 3-partition topics are
written by paced producers that differ only in ``linger.ms``: 1 ms (about one record per
batch at 1k ev/s, as a web app producing each page view at once does) and 50 ms (tens of
records per batch). Each round produces ``rate * seconds`` records to each topic in
turn, read back by a consumer that follows the topic from the start (``fetch.wait.max.ms``
5, ``isolation.level`` as the scorers have it); the figures are the produce() -> consumed
latency of each round and the records still unread after a 30 s drain. A round's topic
holds every record of the rounds before it, so the rounds show how the hop changes as
the partitions fill: flat on Apache Kafka (a fetch finds its offset in an index), rising
with the batches stored on the embedded broker (Tansu's memory storage lists every batch
of a partition on each fetch that returns data).
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from streams.io.topics import ensure_topics

from .harness import Bench, TopicTail, paced, run_standalone
from .report import RESULTS, percentile

#: The producers' ``linger.ms`` compared: one record per batch, and tens.
LINGERS_MS = (1, 50)
#: The reader's ``fetch.wait.max.ms`` (the latency benches' reader has the same).
READER_FETCH_WAIT_MS = 5
DRAIN_S = 30.0


class GrowingTopic:
    """One topic, its paced producer (``linger_ms``) and a reader from its start."""

    def __init__(self, bench: Bench, linger_ms: int) -> None:
        self.settings = bench.run_settings(f"growth-{linger_ms}ms")
        self.topic = self.settings.topic_page_views
        ensure_topics(self.settings, [self.topic])
        self.linger_ms = linger_ms
        self.producer = Producer(self.settings.producer_config(**{"linger.ms": linger_ms}))
        self.tail = TopicTail(self.settings, self.topic, READER_FETCH_WAIT_MS)
        self.stored = 0
        self.received: dict[bytes, float] = {}
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for msg in self.tail.poll(0.05):
                self.received.setdefault(msg.value() or b"", time.time())

    def round(self, index: int, rate: int, seconds: float) -> dict[str, Any]:
        """Produce ``rate * seconds`` records at ``rate``/s; their one-hop latency."""
        sent: dict[bytes, float] = {}
        for i in paced(self.producer, int(rate * seconds), rate):
            value = f"{index}-{i}".encode()
            sent[value] = time.time()
            self.producer.produce(self.topic, value, value)
            self.producer.poll(0)
        if self.producer.flush(30):
            raise RuntimeError(f"{self.topic}: records still unacknowledged after 30 s")
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and any(v not in self.received for v in sent):
            time.sleep(0.05)
        lat = [(self.received[v] - t) * 1000 for v, t in sent.items() if v in self.received]
        out = {
            "stored_before": self.stored,
            "p50_ms": round(percentile(lat, 50), 1),
            "p99_ms": round(percentile(lat, 99), 1),
            "max_ms": round(max(lat, default=float("nan")), 1),
            "unread_after_drain": len(sent) - len(lat),
        }
        self.stored += len(sent)
        return out

    def close(self) -> None:
        self._stop.set()
        self._reader.join(5)
        self.tail.close()


def run(bench: Bench, rounds: int, rate: int, seconds: float) -> dict[str, Any]:
    topics = [GrowingTopic(bench, linger) for linger in LINGERS_MS]
    per_linger: dict[str, list[dict[str, Any]]] = {str(t.linger_ms): [] for t in topics}
    try:
        time.sleep(2.0)  # the readers' first fetches
        for r in range(rounds):
            for t in topics:  # alternating: both see the same machine load
                per_linger[str(t.linger_ms)].append(t.round(r, rate, seconds))
                print(f"round {r} linger {t.linger_ms} ms: {per_linger[str(t.linger_ms)][-1]}")
    finally:
        for t in topics:
            t.close()
    return {"rate": rate, "seconds_per_round": seconds, "rounds": per_linger}


def report(out: dict[str, Any]) -> str:
    lingers = list(out["rounds"])
    head = " | ".join(f"linger {lg} ms p50 / p99 / unread" for lg in lingers)
    lines = [
        f"# One broker hop as a topic fills up ({out['services']} broker)",
        "",
        f"{out['rate']:,} records/s for {out['seconds_per_round']} s per round and topic, "
        "3 partitions; latency = produce() -> consumed, ms; unread = records not consumed "
        f"{DRAIN_S:.0f} s after the round. Load average at start: "
        f"{out['machine']['load_avg_at_start']}.",
        "",
        f"| round | records in the topic before | {head} |",
        "|---:|---:|" + "---:|" * len(lingers),
    ]
    for r in range(len(out["rounds"][lingers[0]])):
        cells = []
        for lg in lingers:
            x = out["rounds"][lg][r]
            cells.append(f"{x['p50_ms']} / {x['p99_ms']} / {x['unread_after_drain']}")
        stored = out["rounds"][lingers[0]][r]["stored_before"]
        lines.append(f"| {r} | {stored:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=RESULTS / "broker_growth.json")
    args = parser.parse_args(argv)
    run_standalone(
        args.output, lambda bench: run(bench, args.rounds, args.rate, args.seconds), report
    )


if __name__ == "__main__":
    main()
