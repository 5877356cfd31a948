"""tasker's OpenTelemetry metrics, exposed to Prometheus on loopback.

Needs `pip install "tasker-core[otel]" opentelemetry-sdk opentelemetry-exporter-prometheus`.
A Prometheus reader turns the OpenTelemetry instruments into a `/metrics` page; this script
serves it on 127.0.0.1, runs a few tasks (one fails, one is retried on a fresh worker), scrapes
its own page and prints tasker's series. A real application keeps the server running and lets
Prometheus scrape it.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, start_http_server

from tasker import TaskManager, UnhealthyOn
from tasker_otel import observe


@contextmanager
def prometheus_endpoint(
    host: str = "127.0.0.1", port: int = 0
) -> Iterator[tuple[str, MeterProvider]]:
    """Serve a `/metrics` page for a fresh meter provider; yield its URL and the provider.

    Port 0 picks a free port. The registry is private to the endpoint, so several endpoints
    (and tests) never see each other's metrics. The server is shut down on exit.
    """
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        yield f"http://{host}:{server.server_port}/metrics", provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        provider.shutdown()


def scrape(url: str) -> str:
    """What Prometheus would read from `url`."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


class Thumbnailer:
    """Stands in for an expensive client; the first `flaky.png` crashes the one it runs on."""

    crashed = False

    def render(self, name: str) -> str:
        if name.startswith("corrupt"):
            raise ValueError(f"{name} is not an image")
        if name == "flaky.png" and not Thumbnailer.crashed:
            Thumbnailer.crashed = True
            raise ConnectionError("renderer crashed")  # unhealthy: replaced, task retried
        return f"thumb-{name}"


def render(name: str) -> Callable[[Thumbnailer], str]:
    """The task rendering `name` on a worker's thumbnailer."""
    return lambda thumbnailer: thumbnailer.render(name)


def main() -> None:
    with prometheus_endpoint() as (url, provider):
        manager = (
            TaskManager.builder()
            .with_name("thumbnails")
            .with_resource(Thumbnailer)
            .with_workers(2)
            .with_health_check(UnhealthyOn(ConnectionError))
            .with_metrics("otel", meter_provider=provider, manager="thumbnails")
            .build()
        )
        with manager, observe(manager, meter_provider=provider):
            names = ["a.png", "b.png", "flaky.png", "c.png", "corrupt.png"]
            futures = [manager.submit(render(name)) for name in names]
            futures.append(manager.submit(render("logo.png"), priority=True))
            for future in futures:
                error = future.exception(timeout=10)
                print("failed " if error else "ok     ", error or future.result())
            page = scrape(url)
        print(f"scraped {url}:")
        for line in page.splitlines():
            if line.startswith("tasker_") and "_bucket" not in line:
                print(" ", line)


if __name__ == "__main__":
    main()
