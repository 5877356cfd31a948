"""Ray for tasker: every worker a Ray actor that holds its resource.

Installing the package registers the executor name `"ray"`, whose options are
[`RayOptions`][tasker_ray.RayOptions]'s fields:

```python
from tasker import AsyncTaskManager, TaskManager

threads = TaskManager.builder().with_executor("ray", num_gpus=1)  # a GPU per worker
coroutines = AsyncTaskManager.builder().with_executor("ray", num_cpus=0.5)
```

Ray is imported, and connected to or started, when the first worker starts its actor.
"""

from tasker_ray._version import __version__
from tasker_ray.executor import (
    AsyncRayExecutor,
    AsyncRayPlace,
    RayExecutor,
    RayOptions,
    RayPlace,
)

__all__ = [
    "AsyncRayExecutor",
    "AsyncRayPlace",
    "RayExecutor",
    "RayOptions",
    "RayPlace",
    "__version__",
]
