"""Prometheus metrics (prometheus-client), one set per application: nothing registered at import.

Several processes (``lineside serve --workers N``, whose supervisor also runs the embedded
broker) write their values to files in one directory, and whichever worker is scraped reads
them all: prometheus-client's multiprocess mode. :func:`use_multiprocess_directory` turns it
on before the metrics are made; without it (tests, the CLI) values live in the process.

Figures read from the database at scrape time (devices by state, the webhook backlog) come
from ``scraped`` callbacks, run by the process that answers the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROCESS_ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Request latency buckets: a device's /me is about a millisecond, an export many seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def use_multiprocess_directory(directory: Path) -> None:
    """Keep metric values in files of ``directory``, shared with child processes.

    prometheus-client picks where values live when it is imported; this picks again, so a
    server that imported it before deciding (the CLI does) still writes files. Children
    (uvicorn workers) inherit the environment variable and pick files on their own import.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROCESS_ENVIRONMENT] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def multiprocess_directory() -> Path | None:
    found = os.environ.get(MULTIPROCESS_ENVIRONMENT)
    return Path(found) if found else None


@dataclass(frozen=True)
class Reading:
    """One gauge read at scrape time: name, help, and its value per label value."""

    name: str
    documentation: str
    label: str | None
    values: dict[str, float]


class _Scraped(Collector):
    def __init__(self, read: Callable[[], Sequence[Reading]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        for reading in self._read():
            labels = [reading.label] if reading.label else []
            family = GaugeMetricFamily(reading.name, reading.documentation, labels=labels)
            for label_value, value in reading.values.items():
                family.add_metric([label_value] if reading.label else [], value)
            yield family


class PrometheusMetrics:
    """What Lineside counts. Methods take plain values so callers need no prometheus types."""

    def __init__(self) -> None:
        self._directory = multiprocess_directory()
        # In multiprocess mode values go to files, not to a registry of this process.
        own = None if self._directory else CollectorRegistry(auto_describe=True)
        self._own = own
        self._scraped: list[Callable[[], Sequence[Reading]]] = []
        self.http_requests = Counter(
            "lineside_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=own,
        )
        self.http_latency = Histogram(
            "lineside_http_request_duration_seconds",
            "Time to answer an HTTP request (to the last byte), by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.events = Counter(
            "lineside_events",
            "Domain events committed, by type (device.activated, device.claimed, device.blessed, "
            "device.failed, device.enrolled, ...).",
            ["type"],
            registry=own,
        )
        self.webhook_attempts = Counter(
            "lineside_webhook_attempts",
            "Webhook delivery attempts, by outcome.",
            ["outcome"],
            registry=own,
        )
        self.mqtt_connections = Gauge(
            "lineside_mqtt_connections",
            "Connections open on the embedded MQTT broker.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.mqtt_connects = Counter(
            "lineside_mqtt_connects",
            "CONNECTs the embedded MQTT broker answered, by result.",
            ["result"],
            registry=own,
        )
        self.db_connections_in_use = Gauge(
            "lineside_db_connections_in_use",
            "Database connections checked out of the pool.",
            registry=own,
            multiprocess_mode="livesum",
        )

    # -- what the application reports --------------------------------------------------

    def request_answered(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_latency.labels(method, route).observe(seconds)

    def events_committed(self, types: Sequence[str]) -> None:
        for event_type in types:
            self.events.labels(event_type).inc()

    def webhook_attempted(self, outcome: str) -> None:
        self.webhook_attempts.labels(outcome).inc()

    def mqtt_connect_answered(self, result: str) -> None:
        self.mqtt_connects.labels(result).inc()

    def mqtt_connection_opened(self) -> None:
        self.mqtt_connections.inc()

    def mqtt_connection_closed(self) -> None:
        self.mqtt_connections.dec()

    def db_connection_checked_out(self) -> None:
        self.db_connections_in_use.inc()

    def db_connection_checked_in(self) -> None:
        self.db_connections_in_use.dec()

    def read_at_scrape(self, read: Callable[[], Sequence[Reading]]) -> None:
        self._scraped.append(read)

    # -- exposition -----------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text a Prometheus scrape gets: every process's values, and the scrape-time reads."""
        registry = CollectorRegistry(auto_describe=True)
        if self._directory is not None:
            MultiProcessCollector(registry, path=str(self._directory))  # type: ignore[no-untyped-call]
        elif self._own is not None:
            registry.register(_Registered(self._own))
        for read in self._scraped:
            registry.register(_Scraped(read))
        return generate_latest(registry)


class _Registered(Collector):
    """The in-process registry's metrics, inside the scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
