"""Build the release artifacts of every workspace package, and check them before they ship.

`make dist` runs `python -m tools.dist dist`: for each package under `packages/` (every directory
with a `pyproject.toml`), an sdist and a wheel built from that sdist (so a file missing from the
sdist breaks the build, not a user's install), then the checks of `check()`:

- exactly one wheel and one sdist per package, carrying the same version;
- `twine check --strict`: the metadata is complete and each long description renders;
- versions are consistent: a `__version__ = "..."` written in a wheel equals the wheel's
  version, and every requirement on another workspace package (extras included) accepts the
  version built beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
_VERSION_LINE = re.compile(r"""^__version__(?:\s*:\s*str)?\s*=\s*["']([^"']+)["']""", re.M)


class DistError(Exception):
    """The artifacts are not fit to release; the message says each problem."""


@dataclass(frozen=True)
class Artifacts:
    """One package's wheel and sdist, with the metadata of the wheel."""

    name: str
    version: Version
    wheel: Path
    sdist: Path
    metadata: Message


def members(root: Path = ROOT) -> list[Path]:
    """Every workspace package: the directories under `packages/` with a `pyproject.toml`."""
    return sorted(path.parent for path in (root / "packages").glob("*/pyproject.toml"))


def source_digest(root: Path = ROOT) -> str:
    """A digest of everything a build reads.

    That is each package's files that git does not ignore (tracked or not, as they are on disk
    now) and this module, which says how they are built.

    Any change to a source, a package's metadata or the build procedure changes it, so built
    artifacts stored under it are fit to reuse while it holds.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "packages"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")
    paths = sorted({name for name in listed.split("\0") if name})
    digest = hashlib.sha256()
    for name in [*paths, "tools/dist.py"]:
        path = root / name
        if not path.is_file():  # a tracked file deleted on disk builds as absent
            continue
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build(out: Path, *, root: Path = ROOT, sdist: bool = True) -> None:
    """Build every member into `out`: an sdist and a wheel from it (the wheel alone if not `sdist`).

    Raises:
        DistError: a build failed; the message carries its output.
    """
    out.mkdir(parents=True, exist_ok=True)
    for member in members(root):
        command = [str(BIN / "uv"), "build", "--quiet", "--out-dir", str(out)]
        if not sdist:
            command.append("--wheel")
        done = subprocess.run(
            [*command, str(member)], capture_output=True, text=True, check=False, cwd=root
        )
        if done.returncode != 0:
            raise DistError(f"building {member.name} failed:\n{done.stdout}\n{done.stderr}")


def _wheel_metadata(wheel: Path) -> tuple[Message, list[str]]:
    """The wheel's METADATA, and the `__version__` values written in its modules."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode("utf-8"))
        written = [
            found
            for module in archive.namelist()
            if module.endswith(".py")
            for found in _VERSION_LINE.findall(archive.read(module).decode("utf-8"))
        ]
    return metadata, written


def _sdist_version(sdist: Path) -> str:
    with tarfile.open(sdist) as archive:
        (member,) = [
            m
            for m in archive.getmembers()
            if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
        ]
        extracted = archive.extractfile(member)
        assert extracted is not None
        info = Parser().parse(io.TextIOWrapper(extracted, encoding="utf-8"))
    return str(info["Version"])


def artifacts(out: Path, *, root: Path = ROOT) -> dict[str, Artifacts]:
    """Each member's artifacts in `out`, by canonical name (`check()` verifies them)."""
    found: dict[str, Artifacts] = {}
    problems: list[str] = []
    for member in members(root):
        stem = member.name.replace("-", "_")
        wheels = sorted(out.glob(f"{stem}-*.whl"))
        sdists = sorted(out.glob(f"{stem}-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(
                f"{member.name}: expected one wheel and one sdist, found "
                f"{[p.name for p in wheels + sdists]}"
            )
            continue
        metadata, _ = _wheel_metadata(wheels[0])
        name = canonicalize_name(str(metadata["Name"]))
        found[name] = Artifacts(name, Version(metadata["Version"]), wheels[0], sdists[0], metadata)
    if problems:
        raise DistError("\n".join(problems))
    return found


def check_versions(built: dict[str, Artifacts]) -> list[str]:
    """The version inconsistencies between the artifacts (an empty list when there is none)."""
    problems = []
    for item in built.values():
        sdist = _sdist_version(item.sdist)
        if Version(sdist) != item.version:
            problems.append(f"{item.name}: the wheel is {item.version}, the sdist {sdist}")
        for written in _wheel_metadata(item.wheel)[1]:
            if Version(written) != item.version:
                problems.append(
                    f"{item.name}: __version__ = {written!r} but the package is {item.version}"
                )
        for line in item.metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            sibling = built.get(canonicalize_name(requirement.name))
            if sibling is not None and not requirement.specifier.contains(
                sibling.version, prereleases=True
            ):
                problems.append(
                    f"{item.name} requires {line!r}, which the {sibling.version} built beside "
                    "it does not satisfy"
                )
    return problems


def check(out: Path, *, root: Path = ROOT) -> dict[str, Artifacts]:
    """Check the artifacts in `out` (see the module docstring); return them by name.

    Raises:
        DistError: listing every problem found.
    """
    built = artifacts(out, root=root)
    problems = check_versions(built)
    files = [str(path) for item in built.values() for path in (item.wheel, item.sdist)]
    twine = subprocess.run(
        [str(BIN / "twine"), "check", "--strict", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    if twine.returncode != 0:
        problems.append(f"twine check failed:\n{twine.stdout}{twine.stderr}")
    if problems:
        raise DistError("\n".join(problems))
    return built


def main(argv: Sequence[str] | None = None) -> int:
    """Build into a fresh output directory and check; print what was built."""
    parser = argparse.ArgumentParser(prog="python -m tools.dist", description=__doc__)
    parser.add_argument("out", nargs="?", default="dist", type=Path, help="output directory")
    out: Path = parser.parse_args(argv).out
    shutil.rmtree(out, ignore_errors=True)
    try:
        build(out)
        built = check(out)
    except DistError as error:
        print(error, file=sys.stderr)
        return 1
    for item in built.values():
        print(f"{item.name} {item.version}: {item.wheel.name}, {item.sdist.name}")
    print(f"checked (twine, versions): {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
