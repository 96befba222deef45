"""Every design reference in the repository resolves inside it.

Code, tests and docs cite decisions of docs/design.md ("D6", `docs/design.md#d6-tlp-20-markings`) and sections
of docs/reference/stix-model.md ("§4.2"). These fail when a citation names a decision or heading that does not
exist (a renamed heading breaks every link to it) or points outside the repository, where a reader cannot
follow it; and when the reference's validated examples stop validating.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from stix2validator import ValidationOptions, validate_instance

from tests.conftest import ROOT

DOCS = ROOT / "docs"
DESIGN = DOCS / "design.md"
STIX_MODEL = DOCS / "reference" / "stix-model.md"
# Where citations live: the package, its tests, benchmarks, migrations, docs and the top-level files.
SCANNED_DIRS = ["indicator_exchange", "tests", "bench", "migrations", "docs", ".ci"]
SCANNED_FILES = ["README.md", "Makefile", "Dockerfile", "pyproject.toml", "docker-compose.yml", "alembic.ini"]
SKIPPED_PARTS = {".venv", ".peers", "results", "__pycache__", "data"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".ini", ".yml", ".yaml", ".html", ".txt", ".cfg", ""}

EXAMPLES = DOCS / "reference" / "examples.json"
EXTENSION_SCHEMAS = ROOT / "indicator_exchange" / "stix" / "data" / "extension-schemas"
# The one finding the reference documents and accepts (§3): `account_type: "x-llm-api"` is outside the open
# account-type-ov vocabulary, which strict mode turns from warning into error 244.
ACCEPTED_STRICT_FINDINGS = {"sco_user_account": "{244}"}

DECISION = re.compile(r"\bD(\d{1,2})\b")
DOC_LINK = re.compile(r"\bdocs/([\w./-]+\.md)(?:#([\w-]+))?")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
STIX_MODEL_SECTION = re.compile(r"stix-model(?:\.md)?[^§\n]{0,40}§\s?(\d+(?:\.\d+)?)")
# Places outside the repository that design references used to point at.
OUTSIDE = re.compile(r"\.\./shared\b|/work/shared\b|\bshared/(?:reference|DESIGN)|\bDESIGN(?:\.md)?\b")


def _scanned() -> Iterator[Path]:
    for name in SCANNED_FILES:
        if (ROOT / name).is_file():
            yield ROOT / name
    for directory in SCANNED_DIRS:
        for path in sorted((ROOT / directory).rglob("*")):
            relative = path.relative_to(ROOT)
            if (
                path.is_file()
                and path.suffix in TEXT_SUFFIXES
                and not SKIPPED_PARTS.intersection(relative.parts)
                and path != Path(__file__)
            ):
                yield path


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _texts() -> Iterator[tuple[Path, str]]:
    for path in _scanned():
        yield path, _text(path)


def headings(path: Path) -> list[str]:
    """The Markdown headings of ``path``, outside fenced code blocks."""
    found, fenced = [], False
    for line in _text(path).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            found.append(match[1])
    return found


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``path`` (lower case, punctuation dropped, spaces to hyphens,
    repeats numbered)."""
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(path):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps only its text
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def _decisions() -> dict[int, str]:
    return {int(m[1]): h for h in headings(DESIGN) if (m := re.match(r"D(\d+)\s", h))}


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"


class TestDesignDocument:
    def test_it_holds_decisions_d1_to_d12_once_each(self) -> None:
        numbers = [int(m[1]) for h in headings(DESIGN) if (m := re.match(r"D(\d+)\s", h))]
        assert numbers == list(range(1, 13))

    def test_the_reference_is_in_the_repository(self) -> None:
        assert STIX_MODEL.is_file()
        assert (DOCS / "reference" / "examples.json").is_file()
        assert {
            "1-proxy-ips",
            "42-mitre-atlas-mapping-verified-against-mitre-atlasatlas-data-release-v561-atlasyaml-version-560-may-2026",
        } <= anchors(STIX_MODEL)


class TestCitations:
    def test_files_are_scanned(self) -> None:
        scanned = {p.relative_to(ROOT).as_posix() for p in _scanned()}
        assert {"README.md", "indicator_exchange/stix/convert.py", "docs/design.md", "tests/conftest.py"} <= scanned

    def test_every_decision_cited_exists(self) -> None:
        decisions = _decisions()
        missing = [
            f"{_where(path, text, m.start())}: D{m[1]}"
            for path, text in _texts()
            for m in DECISION.finditer(text)
            if int(m[1]) not in decisions
        ]
        assert missing == []

    def test_every_link_into_docs_resolves(self) -> None:
        broken = []
        for path in _scanned():
            text = _text(path)
            targets = [(m.start(), DOCS / m[1], m[2]) for m in DOC_LINK.finditer(text)]
            if path.suffix == ".md":
                for m in MD_LINK.finditer(text):
                    target, _, anchor = m[1].partition("#")
                    if re.match(r"[a-z]+:", target):
                        continue  # http:, https:, mailto:
                    targets.append((m.start(), (path.parent / target) if target else path, anchor or None))
            for offset, target, anchor in targets:
                if not target.resolve().exists():
                    broken.append(f"{_where(path, text, offset)}: {target.relative_to(ROOT)} does not exist")
                elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                    broken.append(f"{_where(path, text, offset)}: no heading #{anchor} in {target.name}")
        assert broken == []

    def test_every_stix_model_section_cited_exists(self) -> None:
        sections = {m[1] for h in headings(STIX_MODEL) if (m := re.match(r"(\d+(?:\.\d+)?)\.?\s", h))}
        missing = [
            f"{_where(path, text, m.start())}: §{m[1]}"
            for path, text in _texts()
            for m in STIX_MODEL_SECTION.finditer(text)
            if m[1] not in sections
        ]
        assert missing == []

    def test_nothing_points_outside_the_repository(self) -> None:
        outside = [
            f"{_where(path, text, m.start())}: {m[0]}" for path, text in _texts() for m in OUTSIDE.finditer(text)
        ]
        assert outside == []

    @pytest.mark.parametrize(
        ("citation", "resolves"),
        [
            ("docs/design.md#d6-tlp-20-markings", True),
            ("docs/design.md#d13-nothing", False),
            ("docs/design.md#no-per-process-state", True),
            ("docs/missing.md", False),
        ],
    )
    def test_the_link_check_tells_good_from_broken(self, citation: str, resolves: bool) -> None:
        match = DOC_LINK.search(citation)
        assert match is not None
        target = DOCS / match[1]
        assert (target.exists() and (match[2] is None or match[2] in anchors(target))) is resolves


class TestReferenceExamples:
    """docs/reference/examples.json is what the reference says: objects that pass stix2-validator."""

    EXAMPLES: dict[str, dict[str, object]] = json.loads(EXAMPLES.read_text())

    @pytest.mark.parametrize("name", sorted(EXAMPLES))
    def test_it_passes_the_validator_strictly_with_our_extension_schemas(self, name: str) -> None:
        options = ValidationOptions(
            version="2.1", strict=True, disabled="uuid-check", schema_dir=str(EXTENSION_SCHEMAS)
        )
        result = validate_instance(self.EXAMPLES[name], options)
        errors = [e.message for e in result.errors]
        if name in ACCEPTED_STRICT_FINDINGS:
            assert len(errors) == 1
            assert ACCEPTED_STRICT_FINDINGS[name] in errors[0]
        else:
            assert errors == []
            assert result.is_valid

    def test_every_kind_of_object_the_service_publishes_is_exemplified(self) -> None:
        types = {str(example["type"]) for example in self.EXAMPLES.values()}
        expected = {
            "indicator",
            "x-llm-prompt",
            "x-hashed-identifier",
            "campaign",
            "relationship",
            "sighting",
            "extension-definition",
            "marking-definition",
            "identity",
        }
        assert expected <= types
