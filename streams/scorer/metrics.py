"""Scorer metrics in Prometheus text format (served by ``GET /metrics``).

Each scorer has its own registry, so several scorers in one process (tests) never mix
their counts.
"""

from __future__ import annotations

import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from streams.scorer.core import ServedQuality
from streams.scorer.model_holder import ModelHolder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from streams.io.consumer_lag import LagMonitor
    from streams.scorer.experiment_routing import ExperimentFollower
    from streams.scorer.overload import InFlightLimit

__all__ = ["CONTENT_TYPE_LATEST", "RollingQuality", "ScorerMetrics"]


class RollingQuality:
    """Served hit@k and MRR over roughly the last ``window`` judged page views."""

    def __init__(self, window: int = 5000) -> None:
        self.window = window
        self._batches: deque[ServedQuality] = deque()
        self._total = ServedQuality()

    def add(self, batch: ServedQuality) -> None:
        if not batch.judged:
            return
        self._batches.append(batch)
        self._total += batch
        while self._batches and self._total.judged - self._batches[0].judged >= self.window:
            self._total -= self._batches.popleft()

    @property
    def judged(self) -> int:
        return self._total.judged

    @property
    def hit_rate(self) -> float:
        return self._total.hit_rate

    @property
    def mrr(self) -> float:
        return self._total.mrr


class ScorerMetrics:
    """Counters, gauges and the batch latency histogram of one scorer."""

    def __init__(
        self, holder: ModelHolder, k: int, experiments: ExperimentFollower | None = None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.holder = holder
        self.quality = RollingQuality()
        #: Served quality since start per model version that served it (the console's
        #: per-version column; a batch is scored by one version).
        self.quality_by_version: dict[int, ServedQuality] = {}
        r = self.registry
        self.events_scored = Counter("streamrec_events_scored", "Page views answered", registry=r)
        self.dead_letters = Counter(
            "streamrec_dead_letters", "Inputs sent to the DLQ", ["reason"], registry=r
        )
        self.send_retries = Counter(
            "streamrec_send_retries", "Batches sent again after the broker refused them", registry=r
        )
        self.redis_errors = Counter(
            "streamrec_redis_errors", "Redis operations that failed (history degraded)", registry=r
        )
        self.batch_seconds = Histogram(
            "streamrec_batch_seconds",
            "Time to score and send one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "streamrec_batch_size",
            "Page views per batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
            registry=r,
        )
        Gauge(
            "streamrec_model_version", "Snapshot version served (0 = cold start)", registry=r
        ).set_function(lambda: holder.current.version)
        Gauge(
            "streamrec_snapshot_age_seconds", "Age of the served snapshot", registry=r
        ).set_function(self._snapshot_age)
        Gauge(
            "streamrec_snapshots_rejected", "Snapshots refused (bad MAC, format, class)", registry=r
        ).set_function(lambda: holder.rejected)
        Gauge("streamrec_model_swaps", "Snapshots swapped in since start", registry=r).set_function(
            lambda: holder.swaps
        )
        Gauge(
            f"streamrec_served_hit_at_{k}",
            "Rolling share of page views that were in the list served to the same user just before",
            registry=r,
        ).set_function(lambda: self.quality.hit_rate)
        Gauge(
            f"streamrec_served_mrr_at_{k}", "Rolling MRR of the served lists", registry=r
        ).set_function(lambda: self.quality.mrr)
        Gauge(
            "streamrec_served_judged", "Page views in the rolling quality window", registry=r
        ).set_function(lambda: self.quality.judged)

        if experiments is not None:
            self._experiment_gauges(experiments, k)

    def _experiment_gauges(self, experiments: ExperimentFollower, k: int) -> None:
        """Per-arm served quality of the running experiment, summed over every scorer
        (as of this scorer's last poll; NaN when none runs), and the difference."""
        r = self.registry
        for name, help_text in (
            ("judged", "Judged page views per arm of the running experiment"),
            (f"hit@{k}", "Served hit rate per arm of the running experiment"),
            (f"mrr@{k}", "Served MRR per arm of the running experiment"),
        ):
            metric = name.replace("@", "_at_")
            gauge = Gauge(f"streamrec_experiment_{metric}", help_text, ["arm"], registry=r)
            for arm in ("champion", "challenger"):
                gauge.labels(arm).set_function(partial(experiments.arm_figure, arm, name))
        for name in (f"hit@{k}", f"mrr@{k}"):
            metric = name.replace("@", "_at_")
            gauge = Gauge(
                f"streamrec_experiment_difference_{metric}",
                f"Challenger minus champion {name}: estimate, 95 % CI and always-valid CI bounds",
                ["bound"],
                registry=r,
            )
            for bound in (
                "difference",
                "ci95_low",
                "ci95_high",
                "always_valid_low",
                "always_valid_high",
            ):
                gauge.labels(bound).set_function(
                    partial(experiments.difference_figure, name, bound)
                )
        Gauge(
            "streamrec_experiment_gate_decisions",
            "Experiments this scorer's gate promoted or stopped",
            registry=r,
        ).set_function(lambda: experiments.decisions)

    def add_quality(self, version: int, batch: ServedQuality) -> None:
        """Count a batch's judged views, rolling and under the version that served it."""
        self.quality.add(batch)
        if batch.judged:
            self.quality_by_version.setdefault(version, ServedQuality()).__iadd__(batch)

    def _snapshot_age(self) -> float:
        created = self.holder.current.created_at
        return time.time() - created if created else -1.0

    def watch_lag(self, monitor: LagMonitor) -> None:
        """Export ``monitor``'s last read as ``streamrec_consumer_lag`` (per group and
        partition); ``GET /metrics`` refreshes it first when it is stale."""
        self.registry.register(_LagCollector(monitor))

    def watch_serving(self, model_name: str, namespace: Callable[[], str]) -> None:
        """Export which namespace this scorer serves, as ``streamrec_model_served_info``
        (1, labelled with the model name and the namespace: another one after a
        promotion); ``streamrec_model_version`` is that namespace's version."""
        self.registry.register(_ServedCollector(model_name, namespace))

    def watch_consumer(self, health: Callable[[], Mapping[str, Any]]) -> None:
        """Export the page-view consumer's stall state (see streams/io/stall_watch.py)."""
        r = self.registry
        Gauge(
            "streamrec_consumer_stalled",
            "1 while the page-view consumer is behind the log and receives nothing",
            registry=r,
        ).set_function(lambda: float(bool(health()["stalled"])))
        Gauge(
            "streamrec_consumer_stalls",
            "Stalls of the page-view consumer since start (each replaced the consumer)",
            registry=r,
        ).set_function(lambda: float(health()["stalls"]))
        Gauge(
            "streamrec_consumer_fetch_wait_ms",
            "fetch.wait.max.ms of the page-view consumer (raised after each stall)",
            registry=r,
        ).set_function(lambda: float(health()["fetch_wait_ms"]))

    def watch_rest_limit(self, limit: InFlightLimit) -> None:
        """Export the bound on recommendation requests in progress: its refusals (503)
        as ``streamrec_rest_refused_total`` and the requests in progress now."""
        self.registry.register(_RestLimitCollector(limit))

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class _ServedCollector(Collector):
    """The namespace served, as an info-style gauge (its labels change on a promotion)."""

    def __init__(self, model_name: str, namespace: Callable[[], str]) -> None:
        self.model_name = model_name
        self.namespace = namespace

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "streamrec_model_served_info",
            "1 for the namespace whose snapshots this scorer serves (the model name's own "
            "or the one promoted into it)",
            labels=["model_name", "namespace"],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        family.add_metric([self.model_name, self.namespace()], 1.0)
        yield family


class _LagCollector(Collector):
    """The consumer lag gauge, read from the monitor's cache (collecting never blocks)."""

    def __init__(self, monitor: LagMonitor) -> None:
        self.monitor = monitor

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "streamrec_consumer_lag",
            "Records of the page-view topic a consumer group has not committed yet "
            "(high watermark minus committed offset), per partition",
            labels=["role", "group", "topic", "partition"],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from streams.io.consumer_lag import lag_metric_samples

        family = self._family()
        for labels, value in lag_metric_samples(self.monitor.latest):
            family.add_metric(
                [labels["role"], labels["group"], labels["topic"], labels["partition"]], value
            )
        yield family


class _RestLimitCollector(Collector):
    """Refusals and requests in progress of :class:`~streams.scorer.overload.InFlightLimit`."""

    def __init__(self, limit: InFlightLimit) -> None:
        self.limit = limit

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield CounterMetricFamily(
            "streamrec_rest_refused",
            "Recommendation requests answered 503 at once: STREAMREC_REST_MAX_IN_FLIGHT "
            "were in progress",
            value=self.limit.refused,
        )
        yield GaugeMetricFamily(
            "streamrec_rest_in_flight",
            "Recommendation requests in progress",
            value=self.limit.in_flight,
        )
