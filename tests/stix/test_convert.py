"""Detections to STIX: valid (strict validator + our extension schemas), canonical patterns, deterministic ids,
near-duplicate matching through stix2-matcher, and versioning rules."""

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from stix2matcher.matcher import match
from stix2patterns.validator import run_validator
from stix2validator import ValidationOptions, validate_instance

from indicator_exchange.stix.convert import Conversion, convert
from indicator_exchange.stix.detections import (
    AccountInput,
    Cadence,
    Common,
    DetectionInput,
    PromptInput,
    ProxyInput,
    Publisher,
)
from indicator_exchange.stix.fingerprint import fingerprint_prompt
from indicator_exchange.stix.identifiers import Identifier, hmac_identifier
from indicator_exchange.stix.ids import SERVICE_NAMESPACE, deterministic_id
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.stix.patterns import canonical_pattern, prompt_observable
from indicator_exchange.stix.sightings import raise_confidence
from indicator_exchange.stix.versioning import merge, revoke
from tests.conftest import ROOT

NOW = datetime(2026, 2, 24, 12, 0, tzinfo=UTC)
KEY = b"test-community-key"
PUBLISHER = Publisher(
    identity_id="identity--b3d6a1f0-5c1e-4e0a-9d1f-0c2f4a6b8e21",
    organisation="Example Lab",
    community_key=KEY,
    key_id="community-2026-01",
)
SCHEMAS = ROOT / "indicator_exchange" / "stix" / "data" / "extension-schemas"
STRICT = ValidationOptions(version="2.1", strict=True, disabled="uuid-check", schema_dir=str(SCHEMAS))
GOLDEN = ROOT / "tests" / "data" / "golden"
CORPUS = json.loads((ROOT / "tests" / "data" / "prompt-corpus.json").read_text())


def common(**overrides: Any) -> Common:
    values: dict[str, Any] = {
        "detector": "proxy-graph",
        "first_seen": NOW - timedelta(days=2),
        "last_seen": NOW,
        "confidence": 60,
        "tlp": Tlp.AMBER,
        "cluster": "hydra-2026-02-A",
        "accounts_linked": 412,
    }
    values.update(overrides)
    return Common(**values)


def prompt_input(text: str, **overrides: Any) -> PromptInput:
    fp = fingerprint_prompt(text, key=KEY, key_id="community-2026-01")
    return PromptInput(common=common(**overrides), capability="cot-elicitation", sha256=fp.sha256, fingerprint=fp)


CASES: dict[str, DetectionInput] = {
    "proxy_residential": ProxyInput(common=common(), proxy_kind="residential", value="46.91.113.57"),
    "proxy_datacenter_cidr": ProxyInput(common=common(tlp=Tlp.GREEN), proxy_kind="datacenter", value="46.112.100.0/24"),
    "proxy_ipv6_range": ProxyInput(common=common(tlp=Tlp.GREEN), proxy_kind="datacenter", value="2a00:1111:1234::/48"),
    "proxy_asn": ProxyInput(common=common(confidence=40), proxy_kind="residential", asn=264496),
    "prompt": prompt_input(CORPUS["families"]["cot_math"]["base"], confidence=90),
    "account_domains": AccountInput(
        common=common(tlp=Tlp.GREEN), email_domains=("mailbox-example.net", "tmpinbox-example.org")
    ),
    "account_login": AccountInput(common=common(), login_regex="^[a-z]+\\.[a-z]+[0-9]{4}$"),
    "account_cadence": AccountInput(common=common(), cadence=Cadence(20, 3600, "mailbox-example.net")),
    "account_identifiers": AccountInput(
        common=common(),
        identifiers=(
            Identifier("email", "Fresh.Signup.4821@mailbox-example.net"),
            Identifier("payment-instrument", "card-fp-9f1c"),
        ),
    ),
}


def converted(name: str) -> Conversion:
    return convert(CASES[name], publisher=PUBLISHER, now=NOW)


class TestGolden:
    @pytest.mark.parametrize("name", sorted(CASES))
    def test_output_matches_the_golden_file(self, name: str) -> None:
        result = converted(name)
        produced = {"indicators": result.indicators, "campaign": result.campaign, "context": result.context}
        path = GOLDEN / f"{name}.json"
        if os.environ.get("IX_UPDATE_GOLDEN") == "1":  # regenerate deliberately, then review the diff
            path.write_text(json.dumps(produced, indent=2, sort_keys=True) + "\n")
        assert path.exists(), f"no golden file {path}; run with IX_UPDATE_GOLDEN=1 and review it"
        assert json.loads(path.read_text()) == json.loads(json.dumps(produced))


class TestValidity:
    @pytest.mark.parametrize("name", sorted(CASES))
    def test_every_object_passes_the_strict_validator_with_our_schemas(self, name: str) -> None:
        result = converted(name)
        for obj in [*result.versioned, *result.context]:
            outcome = validate_instance(obj, STRICT)
            assert outcome.is_valid, (obj["type"], [str(e) for e in outcome.errors])

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_patterns_are_valid_and_already_canonical(self, name: str) -> None:
        for indicator in converted(name).indicators:
            assert run_validator(indicator["pattern"], stix_version="2.1") == []
            assert canonical_pattern(indicator["pattern"]) == indicator["pattern"]

    def test_no_raw_pii_or_prompt_text_is_emitted(self) -> None:
        text = json.dumps([converted(n).versioned + converted(n).context for n in CASES])
        assert "fresh.signup.4821" not in text.lower()
        assert "card-fp-9f1c" not in text
        assert "train leaves" not in text.lower()
        assert KEY.decode() not in text

    def test_identifiers_are_never_below_amber_strict(self) -> None:
        indicator = converted("account_identifiers").indicators[0]
        assert indicator["object_marking_refs"] == [Tlp.AMBER_STRICT.marking_id]


class TestIds:
    def test_the_same_detection_from_two_detectors_is_one_indicator(self) -> None:
        one = convert(
            ProxyInput(common=common(detector="a"), proxy_kind="residential", value="46.91.113.57"),
            publisher=PUBLISHER,
            now=NOW,
        )
        two = convert(
            ProxyInput(common=common(detector="b", confidence=80), proxy_kind="residential", value="46.91.113.57"),
            publisher=PUBLISHER,
            now=NOW + timedelta(hours=1),
        )
        assert one.indicators[0]["id"] == two.indicators[0]["id"]

    def test_a_new_generation_has_a_new_id(self) -> None:
        first = convert(CASES["proxy_residential"], publisher=PUBLISHER, now=NOW)
        second = convert(CASES["proxy_residential"], publisher=PUBLISHER, now=NOW, generation=1)
        assert first.indicators[0]["id"] != second.indicators[0]["id"]

    @pytest.mark.parametrize(
        "parts",
        [("identity--x", "[ipv4-addr:value = '46.91.113.57']", 0), ('ü\u2013\u0001"\\', 7), ("hydra-12",), ()],
    )
    def test_ids_are_rfc4122_uuid5_of_the_json_name(self, parts: tuple[object, ...]) -> None:
        name = json.dumps(["indicator", *parts], separators=(",", ":"), ensure_ascii=False)
        expected = f"indicator--{uuid.uuid5(SERVICE_NAMESPACE, name)}"
        assert deterministic_id("indicator", *parts) == expected

    def test_the_id_name_is_json_for_every_character(self) -> None:
        """The name is serialised with orjson; it must equal the json module's for any text in a part
        (docs/design.md#d7-deterministic-ids)."""
        for start in range(0, 0x110000, 0x800):
            if 0xD800 <= start <= 0xDFFF:
                continue  # lone surrogates cannot be UTF-8 encoded by either
            text = "".join(chr(c) for c in range(start, start + 0x800) if not 0xD800 <= c <= 0xDFFF)
            name = json.dumps(["indicator", text, 3], separators=(",", ":"), ensure_ascii=False)
            expected = f"indicator--{uuid.uuid5(SERVICE_NAMESPACE, name)}"
            assert deterministic_id("indicator", text, 3) == expected

    def test_short_prompts_get_an_exact_indicator_only(self) -> None:
        result = convert(prompt_input("Think step by step. Show all reasoning."), publisher=PUBLISHER, now=NOW)
        assert [i["pattern"].split(":")[1][:6] for i in result.indicators] == ["hashes"]


def observed(*objects: dict[str, Any], first: str = "2026-02-25T00:00:00Z") -> dict[str, Any]:
    """A partner-side STIX 2.1 bundle: observed-data referring to SCOs (the form stix2-matcher takes for 2.1)."""
    scos = [dict(o, id=o.get("id") or f"{o['type']}--{uuid.uuid4()}", spec_version="2.1") for o in objects]
    data = {
        "type": "observed-data",
        "id": f"observed-data--{uuid.uuid4()}",
        "spec_version": "2.1",
        "first_observed": first,
        "last_observed": first,
        "number_observed": 1,
        "object_refs": [o["id"] for o in scos],
        "created": first,
        "modified": first,
    }
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [data, *scos]}


class TestMatcher:
    @pytest.mark.parametrize("family", sorted(CORPUS["families"]))
    def test_noise_slot_and_light_variants_match_the_lsh_indicator(self, family: str) -> None:
        texts = CORPUS["families"][family]
        lsh = convert(prompt_input(texts["base"]), publisher=PUBLISHER, now=NOW).indicators[1]
        for variant in ("noise", "slot", "light"):
            sco = prompt_observable(fingerprint_prompt(texts[variant], key=KEY, key_id="community-2026-01"))
            assert match(lsh["pattern"], [observed(sco)], stix_version="2.1"), variant

    def test_no_negative_matches_any_family(self) -> None:
        patterns = [
            convert(prompt_input(f["base"]), publisher=PUBLISHER, now=NOW).indicators[1]["pattern"]
            for f in CORPUS["families"].values()
        ]
        for text in CORPUS["negatives"]:
            sco = prompt_observable(fingerprint_prompt(text, key=KEY, key_id="community-2026-01"))
            assert not any(match(p, [observed(sco)], stix_version="2.1") for p in patterns), text

    def test_hashed_identifiers_match_a_partners_own_hash(self) -> None:
        pattern = converted("account_identifiers").indicators[0]["pattern"]
        theirs = {
            "type": "x-hashed-identifier",
            "identifier_type": "email",
            "key_id": "community-2026-01",
            "value": hmac_identifier(KEY, "email", "  fresh.signup.4821@MAILBOX-example.net"),
        }
        other = dict(theirs, value=hmac_identifier(KEY, "email", "someone@else.example"))
        assert match(pattern, [observed(theirs)], stix_version="2.1")
        assert not match(pattern, [observed(other)], stix_version="2.1")

    def test_the_cidr_indicator_matches_addresses_inside_it_only(self) -> None:
        pattern = converted("proxy_datacenter_cidr").indicators[0]["pattern"]
        assert match(pattern, [observed({"type": "ipv4-addr", "value": "46.112.100.77"})], stix_version="2.1")
        assert not match(pattern, [observed({"type": "ipv4-addr", "value": "46.154.101.77"})], stix_version="2.1")


class TestVersioning:
    def test_a_repeat_creates_no_version(self) -> None:
        indicator = converted("proxy_residential").indicators[0]
        again = convert(CASES["proxy_residential"], publisher=PUBLISHER, now=NOW + timedelta(hours=1))
        assert merge(indicator, again.indicators[0], NOW + timedelta(hours=1)) is None

    def test_higher_confidence_and_later_last_seen_make_a_strictly_later_version(self) -> None:
        indicator = converted("proxy_residential").indicators[0]
        later = NOW + timedelta(hours=5)
        newer = convert(
            ProxyInput(common=common(confidence=75, last_seen=later), proxy_kind="residential", value="46.91.113.57"),
            publisher=PUBLISHER,
            now=later,
        ).indicators[0]
        merged = merge(indicator, newer, later)
        assert merged is not None
        assert merged["confidence"] == 75
        assert merged["valid_until"] > indicator["valid_until"]
        assert merged["modified"] > indicator["modified"]
        assert merged["created"] == indicator["created"]

    def test_a_version_in_the_same_millisecond_is_still_strictly_later(self) -> None:
        indicator = converted("proxy_residential").indicators[0]
        bumped = dict(indicator, confidence=99)
        merged = merge(indicator, bumped, NOW)
        assert merged is not None
        assert merged["modified"] > indicator["modified"]

    def test_revoked_objects_get_no_further_versions(self) -> None:
        revoked = revoke(converted("proxy_residential").indicators[0], NOW)
        assert revoked["revoked"] is True
        assert merge(revoked, dict(revoked, confidence=99), NOW) is None

    def test_sightings_raise_confidence_by_the_documented_rule(self) -> None:
        assert raise_confidence(60, 80) == 76
        assert raise_confidence(90, 100) == 95
        assert raise_confidence(96, 100) == 96
