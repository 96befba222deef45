"""The layer contracts: the repository keeps them, and the custom ``external_names`` contract can fail."""

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.import_contracts import ExternalNamesContract, imported_names

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> grimp.ImportGraph:
    for name, text in {"__init__.py": "", "store/__init__.py": "", **files}.items():
        path = tmp_path / "layered" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return grimp.build_graph("layered", include_external_packages=True, cache_dir=None)


def _contract(**options: object) -> ExternalNamesContract:
    defaults: dict[str, object] = {
        "external": "sqlalchemy",
        "allowed_importers": ["layered.store"],
        "allowed_names": ["sqlalchemy.orm.Session", "sqlalchemy.exc"],
    }
    return ExternalNamesContract("sql", session_options={}, contract_options={**defaults, **options})


class TestRepository:
    def test_every_contract_is_kept(self) -> None:
        run = subprocess.run(
            [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "0 broken" in run.stdout


class TestExternalNames:
    def test_a_query_api_outside_store_breaks_it(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        graph = _package(tmp_path, monkeypatch, {"service.py": "def f():\n    from sqlalchemy import select\n"})
        check = _contract().check(graph, verbose=False)
        assert not check.kept
        assert [(v.importer, v.name, v.line) for v in check.metadata["v"]] == [
            ("layered.service", "sqlalchemy.select", 2)
        ]

    def test_the_session_and_errors_are_allowed(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        text = "from sqlalchemy.orm import Session\nfrom sqlalchemy.exc import OperationalError\n"
        graph = _package(tmp_path, monkeypatch, {"service.py": text, "store/q.py": "from sqlalchemy import select\n"})
        assert _contract().check(graph, verbose=False).kept

    def test_a_whole_submodule_is_not_a_name(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        graph = _package(tmp_path, monkeypatch, {"service.py": "from sqlalchemy import orm\n"})
        assert not _contract().check(graph, verbose=False).kept

    def test_an_ignored_import_that_is_gone_breaks_it(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        graph = _package(tmp_path, monkeypatch, {"service.py": "from sqlalchemy.orm import Session\n"})
        check = _contract(ignore_imports=["layered.service -> sqlalchemy.select"]).check(graph, verbose=False)
        assert not check.kept
        assert check.warnings == ["ignored import layered.service -> sqlalchemy.select was not found"]

    def test_names_are_read_with_their_package(self) -> None:
        source = "import sqlalchemy.orm\nimport sqlalchemyx\nfrom sqlalchemy.orm import Session as S, sessionmaker\n"
        assert imported_names(source, "sqlalchemy") == [
            ("sqlalchemy.orm", 1),
            ("sqlalchemy.orm.Session", 3),
            ("sqlalchemy.orm.sessionmaker", 3),
        ]
