"""Strict STIX 2.1 validation (``stix/validation.py``) and what canonical JSON refuses (``stix/objects.py``):
each MUST of the table refuses an object with a message naming the property, what STIX allows passes, and the
pattern check agrees with stix2-patterns."""

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator

from indicator_exchange.stix.objects import InvalidObject, canonical_json, inspect_object
from indicator_exchange.stix.pattern_validation import MAX_PARSED_PATTERN, clear_pattern_cache, pattern_error
from indicator_exchange.stix.validation import RULES, validate_object
from tests.conftest import ROOT
from tests.fixtures.factories import make_indicator
from tests.stix.test_pattern_terms import patterns, simple_patterns

GOLDEN = ROOT / "tests" / "data" / "golden"
STAMP = "2026-02-24T12:00:00.000Z"
IDENTITY = "identity--b3d6a1f0-5c1e-4e0a-9d1f-0c2f4a6b8e21"


def ident(kind: str, n: int = 0) -> str:
    return f"{kind}--{uuid.uuid5(uuid.NAMESPACE_URL, f'{kind}-{n}')}"


def sdo(kind: str, **props: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"type": kind, "spec_version": "2.1", "id": ident(kind), "created": STAMP, "modified": STAMP}
    obj.update(props)
    return obj


def sco(kind: str, **props: Any) -> dict[str, Any]:
    return {"type": kind, "spec_version": "2.1", "id": ident(kind), **props}


def verdict(obj: dict[str, Any]) -> str | None:
    inspect_object(obj)  # what every policy checks first
    return validate_object(obj)


VALID = [
    make_indicator(1),
    sdo("attack-pattern", name="Prompt distillation"),
    sdo("campaign", name="c", first_seen=STAMP, last_seen=STAMP),
    sdo("grouping", context="suspicious-activity", object_refs=[ident("indicator")]),
    sdo("identity", name="Lab", identity_class="organization"),
    sdo("location", region="europe"),
    sdo("location", latitude=48.8, longitude=2.3, precision=100.0),
    sdo("malware", is_family=False),
    sdo("malware-analysis", product="sandbox", result="malicious"),
    sdo("note", content="n", object_refs=[ident("indicator")]),
    sdo(
        "observed-data", first_observed=STAMP, last_observed=STAMP, number_observed=1, object_refs=[ident("ipv4-addr")]
    ),
    sdo("opinion", opinion="agree", object_refs=[ident("indicator")]),
    sdo("report", name="r", published=STAMP, object_refs=[ident("indicator")]),
    sdo("relationship", relationship_type="indicates", source_ref=ident("indicator"), target_ref=ident("campaign")),
    sdo("sighting", sighting_of_ref=ident("indicator"), where_sighted_refs=[IDENTITY], count=3),
    sdo(
        "extension-definition",
        created_by_ref=IDENTITY,
        name="e",
        schema="https://example.org/s",
        version="1.0",
        extension_types=["property-extension"],
    ),
    {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": ident("marking-definition"),
        "created": STAMP,
        "definition_type": "statement",
        "definition": {"statement": "Copyright"},
    },
    sco("ipv4-addr", value="46.91.113.9"),
    sco("file", name="a.exe", hashes={"SHA-256": "0" * 64}),
    sco("network-traffic", protocols=["tcp"], src_ref=ident("ipv4-addr"), dst_port=443),
    sco("email-message", is_multipart=False, body="hi"),
    sco("user-account", user_id="1001"),
    # Custom objects and properties pass as STIX allows them.
    sdo("x-acme-widget", size=3, widget_ref=ident("indicator")),
    make_indicator(
        2, x_acme_score=7, extensions={ident("extension-definition"): {"extension_type": "property-extension", "k": 1}}
    ),
    make_indicator(3, pattern_type="sigma", pattern="title: anything goes"),
]


class TestValid:
    @pytest.mark.parametrize("obj", VALID, ids=lambda o: str(o["type"]))
    def test_valid_objects_pass(self, obj: dict[str, Any]) -> None:
        assert verdict(obj) is None

    @pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
    def test_what_our_converter_writes_passes(self, path: Any) -> None:
        produced = json.loads(path.read_text())
        for obj in [
            *produced["indicators"],
            *([produced["campaign"]] if produced["campaign"] else []),
            *produced["context"],
        ]:
            assert verdict(obj) is None, obj["id"]

    def test_every_spec_type_has_a_rule(self) -> None:
        assert len(RULES) == 19 + 2 + 18 + 3


INVALID = [
    ("pattern", make_indicator(1, pattern="[ipv4-addr:value = '46.91.113.9'")),
    ("pattern", make_indicator(1, pattern="[file:hashes.MD5 = 'not-a-hash']")),
    ("valid_from", make_indicator(1, valid_from=None)),
    ("valid_until", make_indicator(1, valid_until="2026-02-24T12:00:00Z")),  # == valid_from: not later
    ("valid_until", make_indicator(1, valid_until="2026-02-24T12:00:00")),  # no Z
    ("last_seen", sdo("campaign", name="c", first_seen=STAMP, last_seen="2026-01-01T00:00:00Z")),
    ("name", sdo("identity")),
    ("created_by_ref", make_indicator(1, created_by_ref=ident("indicator"))),
    ("created_by_ref", make_indicator(1, created_by_ref="identity--not-a-uuid")),
    ("object_marking_refs", make_indicator(1, object_marking_refs=[IDENTITY])),
    ("object_marking_refs", make_indicator(1, object_marking_refs="marking-definition--x")),
    ("sighting_of_ref", sdo("sighting", sighting_of_ref=ident("ipv4-addr"))),
    ("sighting_of_ref", sdo("sighting", sighting_of_ref=ident("relationship"))),
    ("where_sighted_refs", sdo("sighting", sighting_of_ref=ident("indicator"), where_sighted_refs=[ident("file")])),
    (
        "source_ref",
        sdo(
            "relationship", relationship_type="r", source_ref=ident("marking-definition"), target_ref=ident("campaign")
        ),
    ),
    ("opinion", sdo("opinion", opinion="maybe", object_refs=[ident("indicator")])),
    (
        "extension_types",
        sdo(
            "extension-definition",
            created_by_ref=IDENTITY,
            name="e",
            schema="s",
            version="1",
            extension_types=["new-thing"],
        ),
    ),
    ("confidence", make_indicator(1, confidence=101)),
    ("confidence", make_indicator(1, confidence=True)),
    (
        "number_observed",
        sdo(
            "observed-data",
            first_observed=STAMP,
            last_observed=STAMP,
            number_observed=0,
            object_refs=[ident("ipv4-addr")],
        ),
    ),
    ("object_refs", sdo("observed-data", first_observed=STAMP, last_observed=STAMP, number_observed=1)),
    ("labels", make_indicator(1, labels=[])),
    ("revoked", make_indicator(1, revoked="yes")),
    ("id", make_indicator(1, id="indicator--00000000-0000-0000-0000-000000000000")),  # not RFC 4122
    ("region", sdo("location")),
    ("name", sdo("malware", is_family=True)),
    ("source_name", make_indicator(1, external_references=[{"url": "https://example.org"}])),
    ("marking_ref", make_indicator(1, granular_markings=[{"selectors": ["name"], "marking_ref": IDENTITY}])),
    ("extension_type", make_indicator(1, extensions={ident("extension-definition"): {"extension_type": "other"}})),
    (
        "definition",
        {"type": "marking-definition", "spec_version": "2.1", "id": ident("marking-definition"), "created": STAMP},
    ),
    ("value", sco("ipv4-addr")),
    ("hashes", sco("file")),
    ("src_ref", sco("network-traffic", protocols=["tcp"])),
    ("dst_port", sco("network-traffic", protocols=["tcp"], src_ref=ident("ipv4-addr"), dst_port=70000)),
    ("body", sco("email-message", is_multipart=True, body="x")),
    ("process", sco("process")),
    ("ctime", sco("file", name="a", ctime="yesterday")),
    ("widget_ref", sdo("x-acme-widget", widget_ref="nothing")),
]


class TestInvalid:
    @pytest.mark.parametrize(("prop", "obj"), INVALID, ids=[f"{p}-{i}" for i, (p, _) in enumerate(INVALID)])
    def test_refused_with_a_message_naming_the_property(self, prop: str, obj: dict[str, Any]) -> None:
        message = verdict({k: v for k, v in obj.items() if v is not None})
        assert message is not None
        assert prop in message, message

    def test_the_pattern_message_names_pattern_and_the_parse_error(self) -> None:
        message = verdict(make_indicator(1, pattern="[ipv4-addr:value = '46.91.113.9'"))
        assert message is not None
        assert message.startswith("'pattern' is not a valid STIX pattern")
        assert "]" in message


def valid_by_stix2_patterns(pattern: str) -> bool:
    try:
        return run_validator(pattern, stix_version="2.1") == []
    except Exception:  # its listeners crash on some invalid inputs, e.g. negative list indexes
        return False


class TestPatterns:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(pattern=patterns())
    def test_agrees_with_stix2_patterns(self, pattern: str) -> None:
        clear_pattern_cache()
        assert (pattern_error(pattern) is None) == valid_by_stix2_patterns(pattern), pattern

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(pattern=simple_patterns())
    def test_agrees_with_stix2_patterns_on_the_fast_path(self, pattern: str) -> None:
        clear_pattern_cache()
        assert (pattern_error(pattern) is None) == valid_by_stix2_patterns(pattern), pattern

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        object_type=st.sampled_from(["ipv4-addr", "x-", "_t9", "true", "AND", "a", "x-llm-prompt", "-x", "9a"]),
        prop=st.sampled_from(["value", "false", "b_c", "IN", "x-y", "_", "hashes"]),
        op=st.sampled_from(["=", "!=", "==", "<"]),
        literal=st.text(st.sampled_from("ab'\\ 1."), max_size=6),
    )
    def test_the_one_equality_shortcut_agrees_with_stix2_patterns(
        self, object_type: str, prop: str, op: str, literal: str
    ) -> None:
        pattern = f"[{object_type}:{prop} {op} '{literal}']"
        clear_pattern_cache()
        assert (pattern_error(pattern) is None) == valid_by_stix2_patterns(pattern), pattern

    def test_hash_literals_are_checked_as_stix2_patterns_checks_them(self) -> None:
        for pattern in (
            "[file:hashes.'SHA-256' = 'abc']",
            f"[file:hashes.MD5 = '{'a' * 32}']",
            "[file:hashes.SSDEEP = '!!']",
        ):
            assert (pattern_error(pattern) is None) == valid_by_stix2_patterns(pattern), pattern


def nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    for _ in range(depth - 1):
        inner = {"a": inner}
    return inner


class TestCanonicalJson:
    def test_nul_in_a_value_is_refused_naming_the_property(self) -> None:
        with pytest.raises(InvalidObject, match="'name' contains a NUL"):
            canonical_json(make_indicator(1, name="a\x00b"))

    def test_nul_in_a_nested_property_name_is_refused(self) -> None:
        with pytest.raises(InvalidObject, match="NUL"):
            canonical_json(make_indicator(1, x_custom={"k\x00": 1}))

    def test_an_escaped_backslash_before_u0000_is_text_not_nul(self) -> None:
        assert "\\\\u0000" in canonical_json(make_indicator(1, name="\\u0000"))

    def test_nesting_deeper_than_orjson_writes_is_refused_naming_the_property(self) -> None:
        with pytest.raises(InvalidObject, match="'x_deep' is nested deeper than the 254 levels"):
            canonical_json(make_indicator(1, x_deep=nested(254)))

    def test_the_deepest_writable_nesting_is_stored(self) -> None:
        assert canonical_json(make_indicator(1, x_deep=nested(253)))

    def test_non_ascii_digits_in_timestamps_are_refused(self) -> None:
        arabic = "\u0662\u0660\u0662\u0666-02-24T12:00:00.000Z"
        with pytest.raises(InvalidObject, match="'modified'"):
            inspect_object(make_indicator(1, modified=arabic))
        assert verdict(make_indicator(1, valid_from="2026-02-24T12:00:0\uff10Z")) is not None


class TestLongPatterns:
    def test_a_long_pattern_of_the_simple_shapes_is_read_without_the_parser(self) -> None:
        pattern = "[" + " OR ".join(f"ipv4-addr:value = '10.0.{i // 250}.{i % 250}'" for i in range(400)) + "]"
        assert len(pattern) > MAX_PARSED_PATTERN
        assert pattern_error(pattern) is None

    def test_a_long_pattern_the_parser_would_need_is_refused_not_parsed(self) -> None:
        pattern = "[" + " OR ".join(f"ipv4-addr:value = '10.0.{i // 250}.{i % 250}'" for i in range(400)) + "]"
        pattern += " AND [x:y = 1]"  # observations joined by AND: not a shape the regex reader takes
        message = verdict(make_indicator(1, pattern=pattern))
        assert message is not None
        assert message.startswith("'pattern'")
        assert f"longer than the {MAX_PARSED_PATTERN:,} characters" in message
