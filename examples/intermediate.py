"""Intermediate usage: priority tasks, health checks with worker replacement, retries, metrics.

The workers own image processors that leak memory: each one crashes on its fourth image. The
health check says that a crash means the processor is broken, so its worker destroys it, starts
a fresh one and retries the image. An ordinary error (a corrupt file) is the task's own
problem: the caller gets it and the worker keeps its processor. Meanwhile an urgent thumbnail
jumps the queue.

Run it with `python examples/intermediate.py`.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import Future
from functools import partial

from tasker import RetriesExhaustedError, TaskManager, UnhealthyOn, current_task

IMAGES_PER_PROCESSOR = 3  # the fourth image crashes the processor

_processor_ids = itertools.count(1)
_print_lock = threading.Lock()


def say(message: str) -> None:
    """Print a line; workers print from their own threads, so lines must not interleave."""
    with _print_lock:
        print(message)


class ProcessorCrashedError(Exception):
    """The processor itself failed: it must be replaced."""


class ImageProcessor:
    """A stand-in for an expensive resource that degrades with use."""

    def __init__(self) -> None:
        self.processor_id = next(_processor_ids)
        self.processed = 0

    def process(self, image: str, seconds: float) -> str:
        if image.startswith("poison"):
            raise ProcessorCrashedError(f"processor #{self.processor_id} crashed on {image}")
        if self.processed == IMAGES_PER_PROCESSOR:
            raise ProcessorCrashedError(f"processor #{self.processor_id} ran out of memory")
        if image.startswith("corrupt"):
            raise ValueError(f"{image} is not a valid image")
        time.sleep(seconds)
        self.processed += 1
        return f"{image} done by processor #{self.processor_id}"


def start_processor() -> ImageProcessor:
    processor = ImageProcessor()
    say(f"  [processor #{processor.processor_id} started]")
    return processor


def shut_down_processor(processor: ImageProcessor) -> None:
    say(f"  [processor #{processor.processor_id} shut down]")


def resize(image: str, processor: ImageProcessor) -> str:
    # current_task() tells a running task about itself: here, which attempt this is.
    task = current_task()
    attempt = task.attempt if task is not None else 1
    result = processor.process(image, seconds=0.06)
    return result if attempt == 1 else f"{result} (attempt {attempt})"


def thumbnail(image: str, processor: ImageProcessor) -> str:
    return processor.process(image, seconds=0.02)


def main() -> None:
    say("--- Intermediate usage: priorities, health checks and retries ---")

    manager = (
        TaskManager.builder()
        .with_name("images")
        .with_resource(start_processor, shut_down_processor)
        .with_workers(2, max_workers=2)  # a fixed pool keeps the queue order easy to follow
        .with_resource_pool(0)  # this example never calls run_task
        .with_health_check(UnhealthyOn(ProcessorCrashedError))
        .with_max_retries(2)
        .build()
    )

    images = [f"photo-{n}.jpg" for n in range(1, 11)]
    images[2] = "corrupt-3.jpg"
    images[5] = "poison-6.tiff"
    finished: list[str] = []

    def report(image: str, future: Future[str]) -> None:
        """Print how a task ended: a done-callback, run by the worker that finished it."""
        finished.append(image)
        error = future.exception()
        if error is None:
            say(f"  ok       {future.result()}")
        elif isinstance(error, RetriesExhaustedError):
            # Every attempt broke a processor: after 1 + max_retries runs, tasker gives up.
            say(f"  gave up  {image} after {error.attempts} attempts: {error.__cause__}")
        else:
            # An ordinary exception: the worker stays healthy and the task is not retried.
            say(f"  failed   {image}: {error}")

    with manager:
        say(f"Queuing {len(images)} images...")
        for image in images:
            manager.submit(partial(resize, image)).add_done_callback(partial(report, image))

        time.sleep(0.05)  # a moment later, with most of the images still queued...
        say("An urgent thumbnail arrives: queuing it with priority.")
        # Priority tasks are served before every normal task still waiting in the queue.
        # (`queue_task_with_priority` is the blocking form.)
        urgent = manager.submit(partial(thumbnail, "avatar.png"), priority=True)
        urgent.add_done_callback(partial(report, "avatar.png"))

        # Leaving the block stops the manager gracefully: every queued image is processed first.

    say("")
    overtaken = len(finished) - finished.index("avatar.png") - 1
    say(f"The urgent thumbnail overtook {overtaken} images that were queued before it.")

    metrics = manager.metrics()
    say("")
    say("--- Metrics ---")
    say(f"Tasks arrived:    {metrics.total_tasks_arrived}")
    say(f"Tasks completed:  {metrics.total_tasks_completed}")
    say(f"Tasks failed:     {metrics.total_tasks_failed}")
    say(f"Retries:          {metrics.total_tasks_retried}")
    say(f"Success rate:     {metrics.success_rate:.0%}")
    say(f"Average run time: {metrics.average_execution_time * 1000:.1f} ms")
    say(f"p95 run time:     {metrics.p95_execution_time * 1000:.1f} ms")
    say(f"Average wait:     {metrics.average_wait_time * 1000:.1f} ms")
    say("---------------")
    say("Intermediate usage example finished.")


if __name__ == "__main__":
    main()
