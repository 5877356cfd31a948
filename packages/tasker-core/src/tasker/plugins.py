"""Plugin loading, the name registries, and the observer fan-out.

Plugins come from three places: tasker's own strategies (registered as an ordinary plugin),
the `tasker` entry-point group (installed packages, loaded lazily and once), and objects passed
to `TaskManagerBuilder.with_plugins(...)`. Environment variables:

- `TASKER_DISABLE_PLUGIN_AUTOLOAD=1`: do not load entry points (built-ins and explicit plugins
  still work);
- `TASKER_BLOCK_PLUGINS=name,other`: skip these entry points;
- `TASKER_STRICT_PLUGINS=1`: an entry point that fails to load raises `PluginError` instead of
  being logged and skipped.

Core code never calls `pluggy` directly: it asks a `Plugins` object for registries and for an
`Observers` fan-out, which calls each implementation separately and isolates its failures.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

import pluggy

from tasker import hookspecs
from tasker.events import Event

__all__ = [
    "ENTRY_POINT_GROUP",
    "AttemptScope",
    "LoadedPlugin",
    "Observers",
    "PluginError",
    "Plugins",
    "Registry",
    "check_plugin",
    "default_plugins",
    "reset_plugins",
]

T = TypeVar("T")

ENTRY_POINT_GROUP = "tasker"
"""The entry-point group third-party plugins register under."""

_log = logging.getLogger("tasker.plugins")

KINDS = ("executors", "policies", "health_checks", "loggers", "collectors")
"""The registries, each filled by its `tasker_register_<kind>` hook."""

_LABELS = {  # kind: (builder parameter, singular, plural)
    "executors": ("executor", "executor", "executors"),
    "policies": ("policy", "policy", "policies"),
    "health_checks": ("health_check", "health check", "health checks"),
    "loggers": ("logger", "logger", "loggers"),
    "collectors": ("metrics", "metrics collector", "metrics collectors"),
}

_ADAPTERS = {  # (kind, name): the extra that brings it
    ("collectors", "otel"): "otel",
    ("loggers", "structlog"): "structlog",
}

OBSERVER_HOOKS = (
    "tasker_task_queued",
    "tasker_task_started",
    "tasker_task_attempt_context",
    "tasker_task_finished",
    "tasker_task_retried",
    "tasker_worker_started",
    "tasker_worker_stopped",
    "tasker_worker_replaced",
    "tasker_scaled_up",
    "tasker_scaled_down",
    "tasker_manager_started",
    "tasker_manager_stopped",
)


class PluginError(RuntimeError):
    """A plugin is malformed, could not be loaded (strict mode), or claims a name already taken."""


HOOKS = tuple(
    sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "tasker_spec"))
)
"""The names of tasker's hook specifications."""


def check_plugin(plugin: object, name: str | None = None) -> None:
    """Refuse a plugin whose hooks pluggy would silently ignore.

    pluggy calls only functions marked `@tasker.hookimpl` whose name is a hook specification,
    and skips every other function without a word. So a misspelled hook name, a hook function
    without `@tasker.hookimpl`, or a plugin with no hook at all would register nothing and
    surface much later as an "unknown name". They are refused here instead.

    Raises:
        PluginError: naming the plugin, what is wrong, and the known hook names.
    """
    label = name if name is not None else _plugin_name(plugin)
    problems: list[str] = []
    implemented = 0
    for attribute in sorted(dir(plugin)):
        if not attribute.startswith("tasker_"):
            continue
        try:
            value = getattr(plugin, attribute)
        except Exception:  # a property that raises: not a hook
            continue
        if not inspect.isroutine(value):
            continue
        options = getattr(value, "tasker_impl", None)
        close = difflib.get_close_matches(attribute, HOOKS, n=1, cutoff=0.8)
        if options is None:
            if close:  # a hook, or nearly one, that pluggy will never call
                problems.append(
                    f"{attribute} is not decorated with @tasker.hookimpl, so it is never called"
                )
        elif attribute in HOOKS:
            implemented += 1
            given = _parameters(value)
            passed = _parameters(getattr(hookspecs, attribute))
            unknown = [name for name in given if name not in passed]
            if unknown:
                problems.append(
                    f"{attribute} takes {', '.join(map(repr, unknown))}, which the hook does not "
                    f"pass (it passes {', '.join(map(repr, passed))})"
                )
        elif options.get("optionalhook"):
            implemented += 1
        else:
            hint = f" (did you mean {close[0]}?)" if close and close[0] != attribute else ""
            problems.append(f"{attribute} is not a tasker hook{hint}")
    if not problems and not implemented:
        problems.append("it implements no tasker hook (no function decorated @tasker.hookimpl)")
    if problems:
        raise PluginError(
            f"tasker plugin {label!r}: {'; '.join(problems)}. Known hooks: {', '.join(HOOKS)}"
        )


class Registry(Generic[T]):
    """Names to factories for one kind of strategy, filled by plugins.

    Plugins call `register(name, factory)` from their `tasker_register_*` hook; the builder
    calls `create(name, **options)`.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[Callable[..., T], str]] = {}
        self._plugin = "?"  # who is registering right now
        self.broken: list[tuple[str, BaseException]] = []  # plugins that failed to load

    def register(self, name: str, factory: Callable[..., T]) -> None:
        """Offer `factory` under `name`; a name taken by another plugin is a `PluginError`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if not callable(factory):
            raise TypeError(f"the factory for {self.kind} {name!r} must be callable")
        if name in self._entries:
            owner = self._entries[name][1]
            raise PluginError(
                f"{_LABELS[self.kind][1]} {name!r} is registered by both plugin {owner!r} and "
                f"plugin {self._plugin!r}; block one with TASKER_BLOCK_PLUGINS"
            )
        self._entries[name] = (factory, self._plugin)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def owner(self, name: str) -> str:
        """The plugin that registered `name`."""
        return self._entries[name][1]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def create(self, name: str, **options: Any) -> T:
        """Build the strategy registered under `name` with `options`.

        Raises:
            ValueError: the name is unknown; the message lists the known ones.
        """
        try:
            factory = self._entries[name][0]
        except KeyError:
            known = ", ".join(repr(n) for n in self.names()) or "none"
            parameter, singular, plural = _LABELS[self.kind]
            message = f"{parameter}: unknown {singular} {name!r}; known {plural}: {known}"
            extra = _ADAPTERS.get((self.kind, name))
            if extra is not None:
                message += (
                    f". {name!r} comes with the tasker-{extra} package: "
                    f'pip install "tasker-core[{extra}]"'
                )
            if self.broken:
                failed = "; ".join(f"{plugin!r}: {error!r}" for plugin, error in self.broken)
                message += f". Plugins that failed to load (run `tasker plugins`): {failed}"
            raise ValueError(message) from None
        _check_options(f"{_LABELS[self.kind][1]} {name!r}", factory, options)
        return factory(**options)


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin and where it came from."""

    name: str
    plugin: object
    distribution: str | None = None
    version: str | None = None


@dataclass
class _EntryPoints:
    loaded: list[LoadedPlugin] = field(default_factory=list)
    failed: list[tuple[str, str | None, BaseException]] = field(default_factory=list)


_lock = threading.Lock()
_entry_points: _EntryPoints | None = None
_default: Plugins | None = None


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _load_entry_points() -> _EntryPoints:
    """Import the `tasker` entry points once per process (or after `reset_plugins`)."""
    global _entry_points  # noqa: PLW0603 - a process-wide, load-once cache
    with _lock:
        if _entry_points is not None:
            return _entry_points
        found = _EntryPoints()
        if not _truthy("TASKER_DISABLE_PLUGIN_AUTOLOAD"):
            blocked = {
                n.strip() for n in os.environ.get("TASKER_BLOCK_PLUGINS", "").split(",") if n
            }
            strict = _truthy("TASKER_STRICT_PLUGINS")
            for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
                if entry.name in blocked:
                    continue
                dist = entry.dist
                dist_name = dist.name if dist is not None else None
                try:
                    plugin = entry.load()
                    check_plugin(plugin, entry.name)
                except Exception as error:
                    message = (
                        f"tasker plugin {entry.name!r} (entry point {entry.value!r} of "
                        f"distribution {dist_name!r}) failed to load: {error!r}"
                    )
                    if isinstance(error, PluginError):
                        message = f"{error} (distribution {dist_name!r})"
                    if strict:
                        raise PluginError(message) from error
                    _log.error(message, exc_info=error)
                    found.failed.append((entry.name, dist_name, error))
                    continue
                found.loaded.append(
                    LoadedPlugin(
                        entry.name, plugin, dist_name, dist.version if dist is not None else None
                    )
                )
        _entry_points = found
        return found


def reset_plugins() -> None:
    """Forget loaded entry points and the default plugin set (for tests and reloads)."""
    global _entry_points, _default  # noqa: PLW0603
    with _lock:
        _entry_points = None
        _default = None


def default_plugins() -> Plugins:
    """The plugin set of the process: built-ins plus the entry points (loaded on first use)."""
    global _default  # noqa: PLW0603
    existing = _default
    if existing is not None:
        return existing
    plugins = Plugins()
    with _lock:
        if _default is None:
            _default = plugins
        return _default


class Plugins:
    """A set of plugins with their registries: tasker's built-ins, entry points, `extra`."""

    def __init__(self, extra: Iterable[object] = ()) -> None:
        from tasker import _builtin_plugin  # noqa: PLC0415 - the built-ins import the registry

        self._pm = pluggy.PluginManager("tasker")
        self._pm.add_hookspecs(hookspecs)
        from tasker import __version__  # noqa: PLC0415

        self.loaded: list[LoadedPlugin] = [
            LoadedPlugin("tasker", _builtin_plugin, "tasker-core", __version__)
        ]
        self.loaded += _load_entry_points().loaded
        for plugin in extra:
            check_plugin(plugin)
            self.loaded.append(LoadedPlugin(_plugin_name(plugin), plugin))
        for item in self.loaded:
            if self._pm.is_registered(item.plugin):
                continue
            try:
                self._pm.register(item.plugin, name=item.name)
            except pluggy.PluginValidationError as error:  # a hook's arguments are not the spec's
                detail = " ".join(str(error).split())
                raise PluginError(f"tasker plugin {item.name!r}: {detail}") from None
        self._pm.check_pending()  # every implementation has its specification (checked above)
        failed = [(name, error) for name, _, error in _load_entry_points().failed]
        self.failed: list[tuple[str, BaseException]] = failed
        """Entry points that failed to load: `(name, error)`."""
        self.registries: dict[str, Registry[Any]] = {}
        for kind in KINDS:
            registry: Registry[Any] = Registry(kind)
            registry.broken = self.failed
            for name, call in self._impls(f"tasker_register_{kind}"):
                registry._plugin = name
                try:
                    call(registry=registry)
                except PluginError:
                    raise
                except Exception:
                    _log.exception("tasker plugin %r failed in tasker_register_%s", name, kind)
            self.registries[kind] = registry

    def _impls(self, hook: str) -> list[tuple[str, Callable[..., Any]]]:
        """`(plugin name, caller)` per implementation of `hook`, in pluggy's call order.

        pluggy keeps implementations sorted (trylast first, tryfirst last, later registrations
        after earlier ones) and calls them from the end: the same order here. Each call is
        isolated, so a wrapper (which would have to wrap the others) cannot be honoured and
        is refused.
        """
        calls = []
        for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements {hook} as a wrapper; tasker calls "
                    "each implementation on its own, so wrapper=True and hookwrapper=True are "
                    "not supported: use a plain @hookimpl"
                )
            argnames = impl.argnames
            function = impl.function

            def call(
                _f: Callable[..., Any] = function, _a: tuple[str, ...] = argnames, **kw: Any
            ) -> Any:
                return _f(*[kw[name] for name in _a])

            calls.append((impl.plugin_name, call))
        return calls

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of `kind` (one of `KINDS`)."""
        return self.registries[kind]

    def observers(self, manager: str, log: Callable[..., None]) -> Observers:
        """The observer fan-out for one manager; `log` reports failing hooks."""
        return Observers(manager, {hook: tuple(self._impls(hook)) for hook in OBSERVER_HOOKS}, log)


def _check_options(what: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    """Refuse option names the factory does not take, listing the ones it does."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): let the call decide
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    names = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    unknown = sorted(set(options) - names)
    if unknown:
        valid = ", ".join(sorted(names)) or "none"
        raise TypeError(
            f"{what}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid options: {valid}"
        )


def _parameters(function: Callable[..., Any]) -> list[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pluggy's register will tell
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _plugin_name(plugin: object) -> str:
    name = getattr(plugin, "__name__", None)
    if isinstance(name, str):  # a module, a class
        return name
    return f"{type(plugin).__name__}@{id(plugin):x}"


class Observers:
    """Calls every implementation of each observer hook, isolating failures.

    `has(hook)` is a plain attribute read, so the engine skips hooks nobody implements at no
    cost: `if observers.task_started: observers.emit("tasker_task_started", ...)`.
    """

    __slots__ = (
        "_impls",
        "_log",
        "manager",
        "manager_started",
        "manager_stopped",
        "scaled_down",
        "scaled_up",
        "task_attempt_context",
        "task_finished",
        "task_queued",
        "task_retried",
        "task_started",
        "worker_replaced",
        "worker_started",
        "worker_stopped",
    )
    # one flag per observer hook: does any plugin implement it?
    task_queued: bool
    task_started: bool
    task_attempt_context: bool
    task_finished: bool
    task_retried: bool
    worker_started: bool
    worker_stopped: bool
    worker_replaced: bool
    scaled_up: bool
    scaled_down: bool
    manager_started: bool
    manager_stopped: bool

    def __init__(
        self,
        manager: str,
        impls: dict[str, tuple[tuple[str, Callable[..., Any]], ...]],
        log: Callable[..., None],
    ) -> None:
        self.manager = manager
        self._impls = impls
        self._log = log
        for hook in OBSERVER_HOOKS:
            setattr(self, hook.removeprefix("tasker_"), bool(impls.get(hook)))

    @classmethod
    def none(cls, manager: str = "") -> Observers:
        """A fan-out with no observer at all."""
        return cls(manager, {}, lambda *a, **k: None)

    def attempt_scope(self, task: Any, worker_id: int | None) -> AttemptScope | None:
        """The context managers plugins wrap around one attempt, or `None` if none was given."""
        managers = []
        for plugin, call in self._impls.get("tasker_task_attempt_context", ()):
            try:
                manager = call(manager=self.manager, task=task, worker_id=worker_id)
            except BaseException as error:  # user code: contained
                self._failed(plugin, "tasker_task_attempt_context", error)
                continue
            if manager is not None:
                managers.append((plugin, manager))
        return AttemptScope(managers, self._failed) if managers else None

    def _failed(self, plugin: str, hook: str, error: BaseException) -> None:
        self._log(logging.ERROR, Event.PLUGIN_FAILED, plugin=plugin, hook=hook, error=error)

    def emit(self, hook: str, /, **fields: Any) -> None:
        """Call every implementation of `hook` with `manager` and `fields`."""
        for plugin, call in self._impls.get(hook, ()):
            try:
                call(manager=self.manager, **fields)
            except BaseException as error:  # user code: contained
                self._log(logging.ERROR, Event.PLUGIN_FAILED, plugin=plugin, hook=hook, error=error)


class AttemptScope:
    """Enters and exits plugins' attempt context managers, isolating their failures.

    Runtimes call `enter()` and `exit(error)` inside the task's context.
    """

    __slots__ = ("_entered", "_failed", "_managers")

    def __init__(
        self,
        managers: list[tuple[str, AbstractContextManager[Any]]],
        failed: Callable[[str, str, BaseException], None],
    ) -> None:
        self._managers = managers
        self._failed = failed
        self._entered: list[tuple[str, AbstractContextManager[Any]]] = []

    def enter(self) -> None:
        """Enter every context manager; one that raises is logged and left out."""
        for plugin, manager in self._managers:
            try:
                manager.__enter__()
            except BaseException as error:  # user code: contained
                self._failed(plugin, "tasker_task_attempt_context", error)
                continue
            self._entered.append((plugin, manager))

    def exit(self, error: BaseException | None) -> None:
        """Exit in reverse order, passing the attempt's exception through (never suppressed)."""
        details = (type(error), error, error.__traceback__) if error is not None else (None,) * 3
        for plugin, manager in reversed(self._entered):
            try:
                manager.__exit__(*details)
            except BaseException as failure:  # user code: contained
                self._failed(plugin, "tasker_task_attempt_context", failure)
        self._entered.clear()
