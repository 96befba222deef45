"""constraints.txt pins everything the test install brings in, so a fresh `make install` gets what was tested.

These fail when a dependency changes in pyproject.toml without `make constraints` (which regenerates the file).
"""

import tomllib
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

REGENERATE = "pyproject.toml and constraints.txt disagree: run `make constraints` and commit the file"


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**default_environment(), "extra": e}) for e in extras or {""})


def _closure() -> set[str]:
    """Every distribution the project's (test) requirements pull in, as installed here."""
    seen: set[str] = set()
    todo = [(r, set(r.extras)) for r in _project_requirements()]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.requires(name) or []:
            sub = Requirement(text)
            if _applies(sub, extras):
                todo.append((sub, set(sub.extras)))
    return {key.partition("[")[0] for key in seen}


def test_every_direct_pin_matches_the_constraints() -> None:
    pins = _pins()
    for requirement in _project_requirements():
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{requirement} is not pinned exactly"
        assert pins.get(canonicalize_name(requirement.name)) == spec.version, f"{requirement.name}: {REGENERATE}"


def test_every_installed_dependency_is_pinned_at_its_installed_version() -> None:
    pins = _pins()
    for name in _closure():
        assert name in pins, f"{name} is not in constraints.txt: {REGENERATE}"
        assert metadata.version(name) == pins[name], f"{name}: {REGENERATE}"
