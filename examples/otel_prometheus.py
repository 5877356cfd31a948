"""tasker's OpenTelemetry metrics, served to Prometheus.

Needs `pip install "tasker-core[otel]" opentelemetry-sdk opentelemetry-exporter-prometheus`:
tasker-otel depends on the OpenTelemetry API only, and the SDK with its exporters is the
application's choice.

    python examples/otel_prometheus.py              # http://127.0.0.1:9464/metrics, Ctrl-C stops
    python examples/otel_prometheus.py --port 8000  # another port (--host for another address)
    python examples/otel_prometheus.py --self-test  # one batch, scrape the page once, exit

A Prometheus reader turns the OpenTelemetry instruments into a `/metrics` page, served here
while a batch of thumbnails is rendered every second (one image is corrupt, and the first
`flaky.png` crashes its renderer, which is replaced and the task retried). Point Prometheus at
it:

    scrape_configs:
      - job_name: thumbnails
        static_configs: [{targets: ["127.0.0.1:9464"]}]

The `"otel"` collector observes its own manager's live state (queue depth, workers, busy
workers, pooled resources): `tasker_otel.observe(manager)` is only for a manager built without
`.with_metrics("otel")`.
"""

from __future__ import annotations

import argparse
import signal
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, start_http_server

from tasker import TaskManager, UnhealthyOn

PORT = 9464
"""The port the page is served on unless `--port` says otherwise (the exporter's usual one)."""


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


def render_batch(manager: TaskManager[Thumbnailer], *, show: bool) -> None:
    """Render a few images, one of them ahead of the others; wait for every outcome."""
    names = ["a.png", "b.png", "flaky.png", "c.png", "corrupt.png"]
    futures = [manager.submit(render(name)) for name in names]
    futures.append(manager.submit(render("logo.png"), priority=True))
    for future in futures:
        error = future.exception(timeout=10)
        if show:
            print("failed " if error else "ok     ", error or future.result())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve tasker's metrics to Prometheus.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=PORT, help=f"port, 0 for any ({PORT})")
    parser.add_argument(
        "--self-test", action="store_true", help="render one batch, scrape once, and exit"
    )
    args = parser.parse_args(argv)
    with prometheus_endpoint(args.host, args.port) as (url, provider):
        manager = (
            TaskManager.builder()
            .with_name("thumbnails")
            .with_resource(Thumbnailer)
            .with_workers(2)
            .with_health_check(UnhealthyOn(ConnectionError))
            .with_metrics("otel", meter_provider=provider)  # counters, histograms and gauges
            .build()
        )
        with manager:
            render_batch(manager, show=True)
            if args.self_test:
                print(f"scraped {url}:")
                for line in scrape(url).splitlines():
                    if line.startswith("tasker_") and "_bucket" not in line:
                        print(" ", line)
                return
            # Ctrl-C (SIGINT) only sets an event: the batch under way finishes, then all stops
            interrupted = threading.Event()
            previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
            try:
                print(f"serving {url} until interrupted (Ctrl-C)", flush=True)
                while not interrupted.wait(1.0):
                    render_batch(manager, show=False)
            finally:
                signal.signal(signal.SIGINT, previous)
        print("stopped: the manager drained its queues and the page is gone")


if __name__ == "__main__":
    main()
