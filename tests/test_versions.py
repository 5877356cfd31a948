"""One version per package, read from one place, and pins between the packages that accept it.

Each member of the workspace (`packages/*`) keeps its version in its `_version.py`, which its
build reads for the metadata (`[tool.hatch.version]`) and its `__init__` re-exports as
`__version__`. Every requirement of a member on another member must accept that member's
version, so a release of one never leaves the others unable to install beside it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Member:
    """One package of the workspace, as its pyproject.toml describes it."""

    directory: Path
    project: dict[str, object]
    tool: dict[str, object]

    @property
    def name(self) -> str:
        return canonicalize_name(str(self.project["name"]))

    @property
    def version_file(self) -> Path:
        hatch = self.tool.get("hatch", {})
        assert isinstance(hatch, dict)
        version = hatch.get("version", {})
        assert isinstance(version, dict), f"{self.name}: no [tool.hatch.version]"
        return self.directory / str(version["path"])

    @property
    def module(self) -> str:
        """The import name: the version file's package, under `src/`."""
        relative = self.version_file.relative_to(self.directory / "src")
        return ".".join(relative.parent.parts)

    @property
    def version(self) -> Version:
        """The version the source declares: the one `__version__ = "..."` of the version file."""
        tree = ast.parse(self.version_file.read_text(encoding="utf-8"))
        values = [
            node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == ["__version__"]
            and isinstance(node.value, ast.Constant)
        ]
        assert len(values) == 1, f"{self.version_file}: one `__version__ = '...'` expected"
        return Version(str(values[0]))

    def requirements(self) -> list[Requirement]:
        """Its dependencies and the dependencies of each of its extras."""
        listed = list(self.project.get("dependencies", []))  # type: ignore[call-overload]
        extras = self.project.get("optional-dependencies", {})
        assert isinstance(extras, dict)
        for group in extras.values():
            listed.extend(group)
        return [Requirement(text) for text in listed]


def _members() -> list[Member]:
    members = []
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        members.append(Member(pyproject.parent, data["project"], data.get("tool", {})))
    return members


MEMBERS = _members()
BY_NAME = {member.name: member for member in MEMBERS}


def test_the_workspace_has_its_packages() -> None:
    assert {"tasker-core", "tasker-otel", "tasker-structlog"} <= set(BY_NAME)


@pytest.mark.parametrize("member", MEMBERS, ids=lambda member: member.name)
def test_the_version_has_one_source(member: Member) -> None:
    assert "version" not in member.project, f"{member.name}: a static version beside the file"
    assert "version" in member.project.get("dynamic", [])  # type: ignore[operator]
    assert member.version_file.is_file()


@pytest.mark.parametrize("member", MEMBERS, ids=lambda member: member.name)
def test_the_metadata_and_dunder_version_are_the_source(member: Member) -> None:
    assert Version(importlib.metadata.version(member.name)) == member.version
    assert importlib.import_module(member.module).__version__ == str(member.version)


PINS = [
    (member, requirement)
    for member in MEMBERS
    for requirement in member.requirements()
    if canonicalize_name(requirement.name) in BY_NAME
]


def test_the_adapters_pin_the_core() -> None:
    pins = {(member.name, canonicalize_name(requirement.name)) for member, requirement in PINS}
    assert {("tasker-otel", "tasker-core"), ("tasker-structlog", "tasker-core")} <= pins


@pytest.mark.parametrize(
    ("member", "requirement"), PINS, ids=[f"{member.name}->{req}" for member, req in PINS]
)
def test_each_pin_on_a_member_accepts_its_version(member: Member, requirement: Requirement) -> None:
    pinned = BY_NAME[canonicalize_name(requirement.name)]
    assert requirement.specifier.contains(pinned.version, prereleases=True), (
        f"{member.name} requires {requirement}, which refuses {pinned.name} {pinned.version}"
    )
