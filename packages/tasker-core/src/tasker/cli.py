"""The `tasker` command line.

`tasker plugins` lists the loaded plugins and what they register, and the plugins that
failed to load with their error (exit status 1 then); `tasker demo` runs the showcase (a live
view on a terminal with rich installed, `--plain` for lines);
`tasker --version` prints the version.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tasker.plugins import KINDS, default_plugins

__all__ = ["main"]


def _plugins() -> int:
    plugins = default_plugins()
    for name, error in plugins.failed:
        print(f"{name}  [FAILED TO LOAD] {error!r}")
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
    return 1 if plugins.failed else 0


def _demo(plain: bool) -> int:
    from tasker.demo import main as demo  # noqa: PLC0415 - only when asked for

    demo(plain=plain)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `tasker` command line; return the exit status."""
    from tasker import __version__  # noqa: PLC0415 - the package imports this module's parent

    parser = argparse.ArgumentParser(prog="tasker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tasker {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser(
        "plugins", help="list loaded plugins (and those that failed to load), with their names"
    )
    demo = commands.add_parser(
        "demo",
        help="run the showcase (a few seconds): a live view on a terminal with rich installed "
        '(pip install "tasker-core[cli]"), plain lines otherwise',
    )
    demo.add_argument("--plain", action="store_true", help="plain lines, even on a terminal")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return _plugins() if args.command == "plugins" else _demo(args.plain)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
