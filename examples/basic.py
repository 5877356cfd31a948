"""Basic usage: a calculator resource, two workers, two tasks and a look at the stats.

Every worker owns a resource for its whole life. Here the resource is a toy calculator; in a
real program it would be something worth keeping open, such as a connection to a maths
service. Tasks are plain functions that receive the resource of the worker running them.

Run it with `python examples/basic.py`.
"""

from __future__ import annotations

import itertools
import threading
import time

from tasker import TaskManager

_calculator_ids = itertools.count(1)
_print_lock = threading.Lock()


def say(message: str) -> None:
    """Print a line; workers print from their own threads, so lines must not interleave."""
    with _print_lock:
        print(message)


class Calculator:
    """A stand-in for an expensive, long-lived resource."""

    def __init__(self) -> None:
        self.calculator_id = next(_calculator_ids)

    def add(self, a: int, b: int) -> int:
        time.sleep(0.05)  # pretend the sum takes a round trip
        return a + b

    def subtract(self, a: int, b: int) -> int:
        time.sleep(0.07)
        return a - b


def create_calculator() -> Calculator:
    calculator = Calculator()
    say(f"INFO: creating calculator #{calculator.calculator_id}")
    return calculator


def destroy_calculator(calculator: Calculator) -> None:
    say(f"INFO: destroying calculator #{calculator.calculator_id}")


def addition(calculator: Calculator) -> int:
    a, b = 10, 25
    say(f"Calculator #{calculator.calculator_id} processing: {a} + {b}")
    return calculator.add(a, b)


def subtraction(calculator: Calculator) -> int:
    a, b = 100, 40
    say(f"Calculator #{calculator.calculator_id} processing: {a} - {b}")
    return calculator.subtract(a, b)


def main() -> None:
    say("--- Basic usage: a simple calculator ---")

    # Two workers, each with its own calculator, and no bursting (max_workers=2). By default
    # the manager also keeps a pool of as many calculators again for `run_task`, so four
    # calculators are created in all.
    manager = (
        TaskManager.builder()
        .with_name("calculator")
        .with_resource(create_calculator, destroy_calculator)
        .with_workers(2, max_workers=2)
        .build()
    )

    # `with` stops the manager gracefully on exit: queued tasks finish, resources are destroyed.
    with manager:
        started = time.perf_counter()

        # `submit` queues a task and returns a `concurrent.futures.Future` straight away, so
        # both tasks run at the same time, one on each worker.
        say("Queuing an addition task...")
        total = manager.submit(addition)
        say("Queuing a subtraction task...")
        difference = manager.submit(subtraction)

        say(f"Task 1 (addition) result: {total.result()}")
        say(f"Task 2 (subtraction) result: {difference.result()}")
        elapsed = time.perf_counter() - started
        say(f"Both tasks done in {elapsed * 1000:.0f} ms (they ran side by side)")

        # `queue_task` is the blocking form: it waits for the task and returns its result.
        answer = manager.queue_task(lambda calculator: calculator.add(6, 36))
        say(f"Task 3 (blocking) result: {answer}")

        stats = manager.stats()
        say("")
        say("--- Current stats ---")
        say(f"Active workers: {stats.active_workers}")
        say(f"Queued tasks: {stats.queued_tasks}")
        say(f"Available resources: {stats.available_resources}")
        say("---------------------")

    say(f"Manager state: {manager.state}")
    say("Basic usage example finished.")


if __name__ == "__main__":
    main()
