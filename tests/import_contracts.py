"""An import-linter contract type that looks at the names imported from an external package.

Why: import-linter squashes an external package into one node, so a ``protected`` contract can only say
"nobody outside store/ imports sqlalchemy" — but services, routes and commands rightly name the unit of work
(``sqlalchemy.orm.Session``) in their signatures. The rule that matters is that no module outside ``store/``
builds SQL: ``external_names`` reads each module's imports of the package and allows only the listed names
(``sqlalchemy.orm.Session`` allows that name; ``sqlalchemy.exc`` allows everything under it).
"""

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


@dataclass(frozen=True)
class Violation:
    importer: str
    name: str
    line: int


def imported_names(source: str, package: str) -> list[tuple[str, int]]:
    """Every dotted name of ``package`` a module's source imports, with its line (``import a.b`` is ``a.b``;
    ``from a.b import c`` is ``a.b.c``), including imports inside functions and ``TYPE_CHECKING`` blocks."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name == package or name.startswith(package + ".")]


def module_file(module: str) -> Path:
    """The source file of an internal module, found from its root package without importing anything."""
    root, *rest = module.split(".")
    spec = importlib.util.find_spec(root)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{root} is not a package")
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def is_allowed(name: str, allowed: set[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in allowed)


class ExternalNamesContract(Contract):
    """Outside ``allowed_importers``, a module may import from ``external`` only the ``allowed_names``.

    Options: ``external`` (a top-level package), ``allowed_importers`` (internal packages or modules that may
    import anything of it), ``allowed_names`` (dotted names, each allowing itself and what is under it) and
    ``ignore_imports`` (``importer -> name`` pairs, each a known violation with its reason in a comment).
    """

    type_name = "external_names"

    external = fields.StringField()
    allowed_importers = fields.ListField(subfield=fields.StringField())
    allowed_names = fields.ListField(subfield=fields.StringField(), required=False)
    ignore_imports = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        external: str = self.external
        importers: list[str] = self.allowed_importers
        allowed = set(self.allowed_names or [])
        ignored: set[tuple[str, str]] = set()
        for pair in self.ignore_imports or []:
            importer, _, name = (part.strip() for part in str(pair).partition("->"))
            ignored.add((importer, name))
        seen: set[tuple[str, str]] = set()
        violations: list[Violation] = []
        for module in sorted(graph.modules):
            if graph.is_module_squashed(module) or is_allowed(module, set(importers)):
                continue
            if external not in graph.find_modules_directly_imported_by(module):
                continue
            for name, line in imported_names(module_file(module).read_text(encoding="utf-8"), external):
                if (module, name) in ignored:
                    seen.add((module, name))
                elif not is_allowed(name, allowed):
                    violations.append(Violation(module, name, line))
        warnings = [f"ignored import {i} -> {n} was not found" for i, n in sorted(ignored - seen)]
        return ContractCheck(kept=not violations and not warnings, warnings=warnings, metadata={"v": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for warning in check.warnings:
            output.print_error(warning, bold=False)
        for violation in check.metadata["v"]:
            output.print_error(f"{violation.importer} imports {violation.name} (l.{violation.line})", bold=False)
        output.new_line()
