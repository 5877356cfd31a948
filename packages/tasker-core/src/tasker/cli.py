"""The `tasker` command line.

`tasker plugins` lists the loaded plugins and what they register; `tasker demo` runs the
showcase.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tasker.plugins import KINDS, default_plugins

__all__ = ["main"]


def _plugins() -> int:
    plugins = default_plugins()
    for loaded in plugins.loaded:
        origin = loaded.distribution or "(passed in code)"
        if loaded.version:
            origin += f" {loaded.version}"
        print(f"{loaded.name}  [{origin}]")
        for kind in KINDS:
            registry = plugins.registry(kind)
            names = [n for n in registry.names() if registry.owner(n) == loaded.name]
            if names:
                print(f"    {kind.replace('_', ' ')}: {', '.join(names)}")
    return 0


def _demo() -> int:
    from tasker.demo import main as demo  # noqa: PLC0415 - only when asked for

    demo()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `tasker` command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="tasker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list loaded plugins, their distributions and names")
    commands.add_parser("demo", help="run the showcase (a few seconds)")
    args = parser.parse_args(argv)
    return _plugins() if args.command == "plugins" else _demo()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
