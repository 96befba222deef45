"""A detection may carry an identifier's HMAC instead of its raw value: same indicator, no PII in the request."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.settings import get_settings
from indicator_exchange.stix.convert import convert
from indicator_exchange.stix.detections import AccountInput
from indicator_exchange.stix.identifiers import Identifier, hmac_identifier
from indicator_exchange.stix.markings import Tlp
from tests.ingest.test_api import detection, objects_of, push, setup, without_proxy
from tests.stix.test_convert import KEY, NOW, PUBLISHER, common

PHONE = "+1 (555) 0100-999"


def identifiers(items: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    item = without_proxy(detection(kind="account_pattern", cluster=None, **overrides))
    item["identifiers"] = items
    return item


def test_an_hmac_builds_the_indicator_its_raw_value_builds() -> None:
    raw = AccountInput(common=common(), identifiers=(Identifier("phone", PHONE), Identifier("device", "Dev-42")))
    hashed = AccountInput(
        common=common(),
        identifiers=(
            Identifier("phone", hmac=hmac_identifier(KEY, "phone", PHONE)),
            Identifier("device", hmac=hmac_identifier(KEY, "device", "dev-42")),
        ),
    )
    (by_value,) = convert(raw, publisher=PUBLISHER, now=NOW).indicators
    (by_hmac,) = convert(hashed, publisher=PUBLISHER, now=NOW).indicators
    assert by_hmac["pattern"] == by_value["pattern"]
    assert by_hmac["id"] == by_value["id"]
    assert by_hmac["object_marking_refs"] == [Tlp.AMBER_STRICT.marking_id]


def test_an_identifier_carries_exactly_one_of_value_and_hmac() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Identifier("phone")
    with pytest.raises(ValueError, match="exactly one"):
        Identifier("phone", PHONE, hmac="a" * 64)


class TestOverHttp:
    def test_value_then_hmac_is_the_same_indicator(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = setup(session)
        digest = hmac_identifier(get_settings().community_key_bytes, "phone", PHONE)
        first = push(client, detector, [identifiers([{"type": "phone", "value": PHONE}], tlp="green")]).json()
        again = push(client, detector, [identifiers([{"type": "phone", "hmac": digest}], tlp="green")]).json()
        assert [r["outcome"] for r in first["results"] + again["results"]] == ["created", "unchanged"], again
        assert again["results"][0]["stix_ids"] == first["results"][0]["stix_ids"]
        (stored,) = objects_of(client, detector, collection, first["results"][0]["stix_ids"][0])
        assert digest in stored["pattern"]
        assert stored["object_marking_refs"] == [Tlp.AMBER_STRICT.marking_id]  # the floor holds for an hmac too
        assert again["results"][0]["adjusted"][0].startswith("tlp: raised from green to amber+strict")

    @pytest.mark.parametrize(
        ("item", "message"),
        [
            ({"type": "phone", "value": PHONE, "hmac": "a" * 64}, "give exactly one of value and hmac"),
            ({"type": "phone"}, "give exactly one of value and hmac"),
            ({"type": "phone", "hmac": "A" * 64}, "should match pattern"),
            ({"type": "phone", "hmac": "ab12"}, "should match pattern"),
            ({"type": "phone", "value": "call me at 5"}, "phone: not a phone number"),
            ({"type": "phone", "value": "abc"}, "phone: not a phone number"),
            ({"type": "phone", "value": "+1 555"}, "phone: a phone number has 6 to 15 digits"),
        ],
    )
    def test_bad_identifiers_are_refused_per_line(
        self, client: TestClient, session: Session, item: dict[str, Any], message: str
    ) -> None:
        _, detector, _ = setup(session)
        good = identifiers([{"type": "device", "value": "dev-1"}])
        response = push(client, detector, [good, identifiers([item])])
        assert response.status_code == 200, response.text
        ok, bad = response.json()["results"]
        assert ok["outcome"] == "created"
        assert bad["outcome"] == "rejected"
        assert bad["line"] == 2
        assert bad["error"]["field"].startswith("account_pattern.identifiers.0"), bad
        assert message in bad["error"]["message"]
        assert PHONE not in response.text
        assert not item.get("value") or item["value"] not in response.text
