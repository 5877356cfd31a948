"""Every option and argument is checked where it is given: numbers finite, flags bool."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from tasker import AsyncTaskManager, TaskManager, TaskManagerBuilder
from tasker.metrics import InMemoryCollector
from tasker.scaling import FixedPolicy, LatencyPolicy, QueueDepthPolicy, RatePolicy
from tests.helpers import Resources, build

NAN, INF = math.nan, math.inf
NOT_NUMBERS: list[object] = [NAN, -INF, True, False, "1", None, [1]]


def builder() -> TaskManagerBuilder[None]:
    return TaskManager.builder()


BUILDER_OPTIONS: dict[str, Callable[[object], object]] = {
    "with_timeout": lambda v: builder().with_timeout(v),  # type: ignore[arg-type]
    "with_backoff(initial)": lambda v: builder().with_backoff(initial=v),  # type: ignore[arg-type]
    "with_backoff(maximum)": lambda v: builder().with_backoff(maximum=v),  # type: ignore[arg-type]
    "with_backoff(broken_after)": lambda v: builder().with_backoff(broken_after=v),  # type: ignore[arg-type]
    "with_workers": lambda v: builder().with_workers(v),  # type: ignore[arg-type]
    "with_workers(max_workers)": lambda v: builder().with_workers(1, max_workers=v),  # type: ignore[arg-type]
    "with_max_retries": lambda v: builder().with_max_retries(v),  # type: ignore[arg-type]
    "with_resource_pool": lambda v: builder().with_resource_pool(v),  # type: ignore[arg-type]
}

POLICY_OPTIONS: list[tuple[str, str]] = [
    ("fixed", "interval"),
    ("rate", "interval"),
    ("rate", "tolerance"),
    ("rate", "headroom"),
    ("rate", "cooldown"),
    ("queue-depth", "threshold"),
    ("queue-depth", "step"),
    ("queue-depth", "interval"),
    ("queue-depth", "cooldown"),
    ("latency", "target"),
    ("latency", "headroom"),
    ("latency", "interval"),
    ("latency", "cooldown"),
    ("adaptive", "interval"),
    ("adaptive", "tolerance"),
    ("adaptive", "backoff"),
    ("adaptive", "max_error_ratio"),
    ("adaptive", "settle"),
    ("adaptive", "probe"),
    ("adaptive", "memory"),
    ("adaptive", "cooldown"),
]


class TestNumbers:
    @pytest.mark.parametrize("value", NOT_NUMBERS)
    @pytest.mark.parametrize("option", sorted(BUILDER_OPTIONS))
    def test_a_builder_option_refuses_what_is_not_a_finite_number(
        self, option: str, value: object
    ) -> None:
        if value is None and option in {"with_timeout", "with_workers(max_workers)"}:
            pytest.skip("None is documented: no limit / the default")
        with pytest.raises(ValueError, match=r"must be .*got"):
            BUILDER_OPTIONS[option](value)

    @pytest.mark.parametrize("value", [*NOT_NUMBERS, INF, -1])
    @pytest.mark.parametrize(("policy", "option"), POLICY_OPTIONS)
    def test_a_policy_option_refuses_what_is_not_a_finite_number(
        self, policy: str, option: str, value: object
    ) -> None:
        with pytest.raises(ValueError, match=rf"{option} must be .*got"):
            builder().with_policy(policy, **{option: value})

    @pytest.mark.parametrize("value", [NAN, INF, 0, -1, True])
    def test_a_collector_window_is_a_finite_duration(self, value: object) -> None:
        with pytest.raises(ValueError, match="window must be"):
            InMemoryCollector(window=value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [NAN, INF, 0])
    def test_a_custom_policy_interval_is_checked(self, value: float) -> None:
        class Custom:
            interval = value

            def target_workers(self, snapshot: object) -> int:
                return 1

        with pytest.raises(ValueError, match=r"Custom\.interval must be"):
            builder().with_policy(Custom())

    def test_infinity_means_no_limit_where_documented(self) -> None:
        assert builder().with_timeout(INF)._timeout is None
        assert builder().with_backoff(broken_after=INF)._backoff.broken_after == INF
        assert FixedPolicy(interval=0.5).interval == 0.5
        assert RatePolicy(cooldown=0).interval == 0.1
        assert QueueDepthPolicy(threshold=0).interval == 0.1
        assert LatencyPolicy(target=1).interval == 0.1


class TestPerCall:
    @pytest.mark.parametrize("value", [NAN, -INF, 0, -1, True, "1"])
    def test_a_task_timeout_is_a_positive_finite_number(
        self, resources: Resources, value: object
    ) -> None:
        with build(resources) as manager:
            with pytest.raises(ValueError, match="timeout must be"):
                manager.submit(lambda r: None, timeout=value)  # type: ignore[arg-type]
            assert manager.metrics().total_tasks_arrived == 0

    def test_an_infinite_task_timeout_means_no_limit(self, resources: Resources) -> None:
        manager = (
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=1)
            .with_policy("fixed")
            .with_timeout(0.000_001)
            .build()
        )
        with manager:
            assert manager.submit(lambda r: 3, timeout=INF).result(10) == 3

    @pytest.mark.parametrize("flag", ["priority", "once"])
    @pytest.mark.parametrize("value", ["no", 0, 1, None])
    def test_flags_are_bool(self, resources: Resources, flag: str, value: object) -> None:
        with build(resources) as manager:
            with pytest.raises(TypeError, match=rf"{flag} must be True or False"):
                manager.submit(lambda r: None, **{flag: value})  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="once must be True or False"):
                manager.run_task(lambda r: None, once="no")  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [NAN, -1, -INF, "1", True])
    def test_stop_and_join_timeouts_are_checked_before_anything_moves(
        self, resources: Resources, value: object
    ) -> None:
        manager = build(resources)
        with pytest.raises(ValueError, match="timeout must be"):
            manager.stop(value)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout must be"):
            manager.join(value)  # type: ignore[arg-type]
        assert manager.state == "running"
        assert manager.stop(INF)
        resources.assert_all_destroyed_once()

    def test_async_stop_accepts_infinity_and_refuses_nan(self, resources: Resources) -> None:
        async def main() -> None:
            manager = await (
                AsyncTaskManager.builder()
                .with_resource(resources.create, resources.destroy)
                .with_policy("fixed")
                .build()
            )
            with pytest.raises(ValueError, match="timeout must be"):
                await manager.stop(NAN)
            with pytest.raises(TypeError, match="once must be True or False"):
                manager.submit(lambda r: None, once="no")  # type: ignore[arg-type, return-value]
            assert await manager.stop(INF)

        asyncio.run(asyncio.wait_for(main(), 30))


class TestPlugins:
    @pytest.mark.parametrize("value", [5, "tasker_otel", None, [object()]])
    def test_with_plugins_takes_objects_or_modules(self, value: object) -> None:
        with pytest.raises(TypeError, match="with_plugins takes plugin objects or modules"):
            builder().with_plugins(value)
