"""Sends every metrics event to the user's collectors, isolating their failures."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tasker.events import Event
from tasker.metrics import MetricsCollector, TaskInfo

__all__ = ["CollectorFanout"]


class CollectorFanout:
    """A `MetricsCollector` that forwards to several; a collector that raises is logged."""

    __slots__ = ("_log", "_others", "_rejections", "_sheds")

    def __init__(self, others: tuple[MetricsCollector, ...], log: Callable[..., None]) -> None:
        self._others = others
        self._log = log  # the manager's guarded log path: a raising logger is contained too
        # the optional methods, for the collectors that define them
        self._rejections = [c for c in others if callable(getattr(c, "record_rejection", None))]
        self._sheds = [c for c in others if callable(getattr(c, "record_shed", None))]

    def _failed(self, collector: MetricsCollector, method: str, error: BaseException) -> None:
        self._log(
            logging.ERROR,
            Event.COLLECTOR_FAILED,
            collector=type(collector).__name__,
            method=method,
            error=error,
        )

    def record_arrival(self, task: TaskInfo) -> None:
        """Forward to every collector."""
        for c in self._others:
            try:
                c.record_arrival(task)
            except BaseException as error:  # user code: contained, whatever it raises
                self._failed(c, "record_arrival", error)

    def record_start(self, task: TaskInfo, wait_time: float) -> None:
        """Forward to every collector."""
        for c in self._others:
            try:
                c.record_start(task, wait_time)
            except BaseException as error:  # user code: contained, whatever it raises
                self._failed(c, "record_start", error)

    def record_completion(self, task: TaskInfo, execution_time: float) -> None:
        """Forward to every collector."""
        for c in self._others:
            try:
                c.record_completion(task, execution_time)
            except BaseException as error:  # user code: contained, whatever it raises
                self._failed(c, "record_completion", error)

    def record_failure(self, task: TaskInfo, execution_time: float, error: BaseException) -> None:
        """Forward to every collector."""
        for c in self._others:
            try:
                c.record_failure(task, execution_time, error)
            except BaseException as failure:  # user code: contained
                self._failed(c, "record_failure", failure)

    def record_retry(self, task: TaskInfo, error: BaseException) -> None:
        """Forward to every collector."""
        for c in self._others:
            try:
                c.record_retry(task, error)
            except BaseException as failure:  # user code: contained
                self._failed(c, "record_retry", failure)

    def record_rejection(self, task: TaskInfo) -> None:
        """Forward to every collector that counts rejections."""
        for c in self._rejections:
            try:
                c.record_rejection(task)  # type: ignore[attr-defined]
            except BaseException as failure:  # user code: contained
                self._failed(c, "record_rejection", failure)

    def record_shed(self, task: TaskInfo, wait_time: float) -> None:
        """Forward to every collector that counts shed tasks."""
        for c in self._sheds:
            try:
                c.record_shed(task, wait_time)  # type: ignore[attr-defined]
            except BaseException as failure:  # user code: contained
                self._failed(c, "record_shed", failure)
