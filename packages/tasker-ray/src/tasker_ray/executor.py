"""The Ray executor: each worker's resource lives in a Ray actor of its own.

`.with_executor("ray")` keeps the manager's API and semantics; what changes is where
`on_create`, the tasks and `on_destroy` run: in one Ray actor per worker, on whichever node of
the cluster has room for it. The actor creates the resource, serves the worker's tasks one at
a time, and destroys the resource when the worker retires or the manager stops; then it is
killed. The manager (its queues, retries, health checks, scaling, metrics) stays in the driver.

- **A lost actor** (killed, its process crashed, its node gone) fails the task it was running
  as unhealthy: the worker is replaced by a fresh actor, wherever Ray finds room, and the task
  retried (never a once-task). After `max_retries` the caller gets `RetriesExhaustedError`
  chaining a [`WorkerCrashedError`][tasker.WorkerCrashedError].
- **Timeouts that really stop**: an attempt past its timeout, or cancelled by `kill()` (or by
  its caller, in an async manager), has its actor killed; the worker starts a fresh one.

What crosses the wire is serialized by Ray (cloudpickle): the hooks once per actor, each task's
function and arguments on the way in, its result or exception on the way out. An exception that
cannot be sent back as itself arrives as [`RemoteTaskError`][tasker.process.RemoteTaskError];
a function, argument or result that cannot cross fails the task with `TypeError`. A task runs
in the actor without the submitter's `contextvars`; `current_task()` gives its id, attempt,
worker, priority, once and resource, as on every executor (`cancelled` stays `False`: a
cancelled attempt's actor is killed).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tasker import _validate as validate
from tasker._task import call_as
from tasker.errors import WorkerCrashedError
from tasker.executors import AsyncioExecutor, ThreadExecutor
from tasker.serialization import (
    EncodedTask,
    RemoteTask,
    encode_task,
    no_task,
    portable_error,
    task_payload,
)

if TYPE_CHECKING:
    from tasker._task import TaskRecord

__all__ = ["AsyncRayExecutor", "AsyncRayPlace", "RayExecutor", "RayOptions", "RayPlace"]


@dataclass(frozen=True, slots=True)
class RayOptions:
    """Settings of the Ray executor.

    Attributes:
        address: the cluster to connect to when Ray is not initialized yet in this process
            (`"ray://host:10001"`, `"host:6379"`, `"auto"`, `"local"`). `None`, the default, is
            Ray's own: the cluster named by `RAY_ADDRESS`, else one running on this machine,
            else a new local one. When the program has called `ray.init()` itself, the
            executor uses that connection and ignores `address` and `init`.
        init: more keywords for `ray.init()` when the executor starts Ray (`num_cpus`,
            `object_store_memory`, `namespace`, ...).
        num_cpus: CPUs each worker's actor reserves (`None`: Ray's default for actors, one to
            be placed, none while it runs).
        num_gpus: GPUs each worker's actor reserves; Ray sets `CUDA_VISIBLE_DEVICES` in it.
        memory: bytes of memory each actor reserves for scheduling.
        resources: custom resources each actor reserves (`{"model_slot": 1}`).
        runtime_env: the actors' runtime environment (`pip`, `env_vars`, `working_dir`, ...).
        scheduling_strategy: where actors go: `"DEFAULT"`, `"SPREAD"`, or one of Ray's
            strategy objects (`PlacementGroupSchedulingStrategy`,
            `NodeAffinitySchedulingStrategy`, ...).
        actor_options: any other keywords for the actor's `.options(...)`
            (`label_selector`, `accelerator_type`, ...).
        create_timeout: seconds to wait for an actor to be placed and to create its resource;
            past it the actor is killed and the creation fails with `TimeoutError`. `None`
            (the default) waits as long as the cluster takes, an autoscaler adding a node
            included.
        stop_grace: seconds an actor is given to run `on_destroy` before it is killed.
    """

    address: str | None = None
    init: Mapping[str, Any] = field(default_factory=dict)
    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: float | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    runtime_env: Mapping[str, Any] | None = None
    scheduling_strategy: Any = None
    actor_options: Mapping[str, Any] = field(default_factory=dict)
    create_timeout: float | None = None
    stop_grace: float = 10.0

    def __post_init__(self) -> None:
        if self.address is not None and not isinstance(self.address, str):
            raise ValueError(f"address must be a string or None, got {self.address!r}")
        for name in ("init", "resources", "actor_options"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
        if self.runtime_env is not None and not isinstance(self.runtime_env, Mapping):
            raise ValueError(
                f"runtime_env must be a mapping or None, got {type(self.runtime_env).__name__}"
            )
        for name in ("num_cpus", "num_gpus", "memory"):
            value = getattr(self, name)
            if value is not None:
                validate.number(name, value, minimum=0.0)
        for key, amount in self.resources.items():
            if not isinstance(key, str):
                raise ValueError(f"resources keys must be names (str), got {key!r}")
            validate.number(f"resources[{key!r}]", amount, minimum=0.0)
        if self.create_timeout is not None:
            validate.seconds("create_timeout", self.create_timeout)
        validate.seconds("stop_grace", self.stop_grace, allow_zero=True)

    def _actor_options(self) -> dict[str, Any]:
        """The keywords of the actor's `.options(...)`: only what was set."""
        chosen: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "memory": self.memory,
            "resources": dict(self.resources) or None,
            "runtime_env": dict(self.runtime_env) if self.runtime_env is not None else None,
            "scheduling_strategy": self.scheduling_strategy,
        }
        options = {key: value for key, value in chosen.items() if value is not None}
        options.update(self.actor_options)
        # one task at a time, and a lost actor is the worker's to replace, not Ray's to restart
        options.update(max_concurrency=1, max_restarts=0, max_task_retries=0)
        return options


# ------------------------------------------------------------------------------- the actor


class _Holder:  # pragma: no cover - runs in the actor
    """A worker's resource, inside its actor. Every method answers `(ok, value)`.

    Hooks and tasks are called in methods rather than in `__init__`, so their exceptions come
    back as themselves; `BaseException`s too (Ray would turn a `KeyboardInterrupt` into a
    cancellation). Plain and `async` hooks and tasks are both accepted: coroutines run to
    completion on an event loop of the actor's own, the same for its whole life, so a resource
    made by an `async` `on_create` (an HTTP session, say) serves every later task.
    """

    def __init__(self) -> None:
        self._resource: Any = None
        self._on_destroy: Callable[[Any], object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task = RemoteTask(_NEVER_TOLD, None)  # what `current_task()` sees

    def _finish(self, outcome: Any) -> Any:
        if not inspect.isawaitable(outcome):
            return outcome
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(outcome)

    def create(
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> tuple[bool, Any]:
        try:
            self._resource = self._finish(on_create())
        except BaseException as error:
            return False, _portable(error)
        self._on_destroy = on_destroy
        self._task.resource = self._resource
        return True, None

    def call(
        self, payload: bytes, about: tuple[int, int, int | None, bool, bool]
    ) -> tuple[bool, Any]:
        task = self._task
        task.task_id, task.attempt, task.worker_id, task.priority, task.once = about
        try:
            task.fn, task.args = _loads(payload)
            return True, call_as(task, self._run)
        except BaseException as error:
            return False, _portable(error)
        finally:
            task.fn, task.args = no_task, ()

    def _run(self) -> Any:
        task = self._task
        return self._finish(task.fn(self._resource, *task.args))

    def destroy(self) -> tuple[bool, Any]:
        resource, self._resource = self._resource, None
        on_destroy, self._on_destroy = self._on_destroy, None
        try:
            if on_destroy is not None:
                self._finish(on_destroy(resource))
        except BaseException as error:
            return False, _portable(error)
        finally:
            if self._loop is not None:
                self._loop.close()
                self._loop = None
        return True, None


class _NeverTold:  # pragma: no cover - runs in the actor
    """An actor's attempt is never asked to stop: it is killed instead (`cancelled` is False)."""

    killed = False

    @property
    def runtime(self) -> _NeverTold:
        return self

    def wait_killed(self, seconds: float) -> bool:
        time.sleep(seconds)
        return False


_NEVER_TOLD = _NeverTold()


def _dumps(value: Any) -> bytes:
    from ray import cloudpickle  # noqa: PLC0415 - Ray's own serializer, as the actor's

    dumps: Callable[[Any], bytes] = cloudpickle.dumps
    return dumps(value)


def _loads(data: bytes) -> Any:  # pragma: no cover - runs in the actor
    from ray import cloudpickle  # noqa: PLC0415

    return cloudpickle.loads(data)


def _prepare(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Serialize a task once, at `submit`: a `TypeError` there names what cannot cross."""
    return (EncodedTask(encode_task(_dumps, fn, args, _WHERE)),)


_WHERE = "a Ray actor"


def _portable(error: BaseException) -> BaseException:  # pragma: no cover - runs in the actor
    from ray import cloudpickle  # noqa: PLC0415 - Ray's own serializer, in the actor

    dumps: Callable[[Any], bytes] = cloudpickle.dumps
    return portable_error(error, dumps)


_actor_class: Any = None


def _holder() -> Any:
    """The `_Holder` actor class, made once per process."""
    global _actor_class  # noqa: PLW0603 - one remote class per process, made on first use
    if _actor_class is None:
        import ray  # noqa: PLC0415

        _actor_class = ray.remote(_Holder)
    return _actor_class


_connecting = threading.Lock()


def _connected() -> bool:
    import ray  # noqa: PLC0415

    return bool(ray.is_initialized())


def _connect(options: RayOptions) -> None:
    """Initialize Ray in this process, unless the program (or another worker) already did."""
    import ray  # noqa: PLC0415

    if ray.is_initialized():
        return
    with _connecting:  # the workers of a new manager start their actors at the same time
        if not ray.is_initialized():
            ray.init(address=options.address, **options.init)


# ----------------------------------------------------------------------- what crosses back


def _outcome(reply: tuple[bool, Any]) -> Any:
    ok, value = reply
    if ok:
        return value
    raise value


def _translate(error: BaseException) -> BaseException:
    """What a call's caller gets for an error Ray raised instead of the call's own reply."""
    from ray import exceptions  # noqa: PLC0415

    if isinstance(error, exceptions.RayTaskError):  # the reply itself could not be sent back
        cause = error.cause
        detail = cause if cause is not None else error
        return TypeError(f"a reply cannot be sent back from its Ray actor: {detail}")
    if isinstance(error, exceptions.UnserializableException):
        return TypeError(f"a reply cannot be received from its Ray actor: {error}")
    if isinstance(error, exceptions.RayError):
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return WorkerCrashedError(f"the worker's Ray actor was lost: {first}")
    return error


def _create_timed_out(timeout: float | None) -> TimeoutError:
    return TimeoutError(
        f"no Ray actor was placed and created within create_timeout={timeout} s: does the "
        "cluster have room for the actor options asked (num_cpus, num_gpus, resources)?"
    )


class _ActorPlace:
    """What the thread and async places share: the options and the actor."""

    resource = None  # the resource lives in the actor

    def __init__(
        self,
        options: RayOptions,
        on_create: Callable[[], Any],
        on_destroy: Callable[[Any], object] | None,
    ) -> None:
        self._options = options
        self._hooks = (on_create, on_destroy)
        self._actor: Any = None
        self._lost = False  # lost or killed: destroy() only makes sure it is dead

    def _start(self) -> Any:
        """Start the actor and ask it to create the resource; the reply's reference."""
        actor = _holder().options(**self._options._actor_options()).remote()
        self._actor = actor
        try:
            return actor.create.remote(*self._hooks)
        except TypeError as error:
            self._kill()
            raise TypeError(
                f"on_create/on_destroy cannot be sent to a Ray actor: {error}"
            ) from error

    def _failed(self, error: BaseException) -> BaseException:
        """What the caller gets for `error`; a lost actor is not asked to destroy anything."""
        translated = _translate(error)
        if isinstance(translated, WorkerCrashedError):
            self._lost = True
        return translated

    def _submit(self, task: TaskRecord[Any]) -> Any:
        actor = self._actor
        if actor is None:
            raise WorkerCrashedError("the worker's Ray actor is gone")
        about = (task.task_id, task.attempt, task.worker_id, task.priority, task.once)
        return actor.call.remote(task_payload(_dumps, task.fn, task.args, _WHERE), about)

    def interrupt(self) -> None:
        """Kill the actor: the attempt stops now, and the worker starts a fresh actor."""
        self._kill()

    def _kill(self) -> None:
        self._lost = True
        actor = self._actor
        if actor is not None:
            import ray  # noqa: PLC0415

            ray.kill(actor, no_restart=True)

    def __repr__(self) -> str:
        actor = self._actor
        return f"{type(self).__name__}(actor={actor._actor_id.hex() if actor else None})"


class RayPlace(_ActorPlace):
    """One worker's actor, driven by the worker's thread in the manager."""

    def create(self) -> None:
        """Start the actor; it runs `on_create`."""
        import ray  # noqa: PLC0415
        from ray import exceptions  # noqa: PLC0415

        _connect(self._options)
        reply = self._start()
        timeout = self._options.create_timeout
        try:
            _outcome(ray.get(reply, timeout=timeout))
        except exceptions.GetTimeoutError:
            self._kill()
            raise _create_timed_out(timeout) from None
        except exceptions.RayError as error:
            self._kill()
            raise _translate(error) from error
        except BaseException:
            self._kill()
            raise

    def call(self, task: TaskRecord[Any]) -> Any:
        """Call the task on the actor and wait for its reply, or for the actor's loss."""
        import ray  # noqa: PLC0415
        from ray import exceptions  # noqa: PLC0415

        reply = self._submit(task)
        try:
            return _outcome(ray.get(reply))
        except exceptions.RayError as error:
            raise self._failed(error) from error

    def destroy(self) -> None:
        """Ask the actor to run `on_destroy`, then kill it (at once if it does not answer)."""
        import ray  # noqa: PLC0415
        from ray import exceptions  # noqa: PLC0415

        actor = self._actor
        if actor is None:
            return
        if self._lost:
            self._kill()
            self._actor = None
            return
        try:
            reply = ray.get(actor.destroy.remote(), timeout=self._options.stop_grace)
        except exceptions.RayError:
            return  # lost, or not answering in time: nothing to report
        finally:
            self._kill()
            self._actor = None
        _outcome(reply)


class AsyncRayPlace(_ActorPlace):
    """One worker's actor, awaited by the worker's asyncio task: no thread is held."""

    async def create(self) -> None:
        """Start the actor; it runs `on_create`."""
        from ray import exceptions  # noqa: PLC0415

        if not _connected():
            await asyncio.to_thread(_connect, self._options)  # starting Ray takes seconds
        reply = self._start()
        timeout = self._options.create_timeout
        try:
            async with asyncio.timeout(timeout):
                _outcome(await reply)
        except TimeoutError as error:
            self._kill()
            if isinstance(error, exceptions.RayError):
                raise _translate(error) from error
            raise _create_timed_out(timeout) from None
        except exceptions.RayError as error:
            self._kill()
            raise _translate(error) from error
        except BaseException:
            self._kill()
            raise

    async def call(self, task: TaskRecord[Any]) -> Any:
        """Call the task on the actor and await its reply, or the actor's loss.

        Cancelled (a timeout, `kill()`, the caller), the call kills the actor: the attempt
        cannot go on behind the worker's back, and the worker is replaced.
        """
        from ray import exceptions  # noqa: PLC0415

        reply = self._submit(task)
        try:
            return _outcome(await reply)
        except asyncio.CancelledError:
            self._kill()
            raise
        except exceptions.RayError as error:
            raise self._failed(error) from error

    async def destroy(self) -> None:
        """Ask the actor to run `on_destroy`, then kill it (at once if it does not answer)."""
        from ray import exceptions  # noqa: PLC0415

        actor = self._actor
        if actor is None:
            return
        if self._lost:
            self._kill()
            self._actor = None
            return
        try:
            async with asyncio.timeout(self._options.stop_grace):
                reply = await actor.destroy.remote()
        except (exceptions.RayError, TimeoutError):
            return  # lost, or not answering in time: nothing to report
        finally:
            self._kill()
            self._actor = None
        _outcome(reply)


def _options_from(options: RayOptions | None, settings: dict[str, Any]) -> RayOptions:
    if options is not None and settings:
        raise TypeError("give either a RayOptions or its settings as keywords, not both")
    return options if options is not None else RayOptions(**settings)


class RayExecutor(ThreadExecutor):
    """Worker loops on threads of the manager; each worker's resource in a Ray actor.

    `RayExecutor(num_gpus=1)` or `RayExecutor(RayOptions(...))`; registered as `"ray"`, so
    `.with_executor("ray", num_gpus=1)` builds one. An `AsyncTaskManager` builder given
    `"ray"` gets its asyncio form, [`AsyncRayExecutor`][tasker_ray.AsyncRayExecutor].
    """

    __slots__ = ("options",)

    def __init__(self, options: RayOptions | None = None, **settings: Any) -> None:
        self.options = _options_from(options, settings)

    @property
    def name(self) -> str:
        """`"ray"`."""
        return "ray"

    def prepare_task(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Serialize the task once, as it is submitted: a `TypeError` names what cannot cross."""
        return _prepare(fn, args)

    def place(  # type: ignore[override]
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> RayPlace:
        """A Ray actor for one worker."""
        return RayPlace(self.options, on_create, on_destroy)

    def for_asyncio(self) -> AsyncRayExecutor:
        """The same executor for an `AsyncTaskManager`."""
        return AsyncRayExecutor(self.options)

    def __repr__(self) -> str:
        return f"RayExecutor({self.options!r})"


class AsyncRayExecutor(AsyncioExecutor):
    """Worker loops as asyncio tasks; each worker's resource in a Ray actor, its calls awaited.

    A worker holds no thread while its actor works, so one event loop keeps hundreds of actors
    busy. Tasks are plain functions (they run in the actor, not on the loop); `on_create` and
    `on_destroy` are plain functions too.
    """

    __slots__ = ("options",)

    def __init__(self, options: RayOptions | None = None, **settings: Any) -> None:
        self.options = _options_from(options, settings)

    @property
    def name(self) -> str:
        """`"ray"`."""
        return "ray"

    def prepare_task(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Serialize the task once, as it is submitted: a `TypeError` names what cannot cross."""
        return _prepare(fn, args)

    def place(  # type: ignore[override]
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> AsyncRayPlace:
        """A Ray actor for one worker."""
        return AsyncRayPlace(self.options, on_create, on_destroy)

    def __repr__(self) -> str:
        return f"AsyncRayExecutor({self.options!r})"
