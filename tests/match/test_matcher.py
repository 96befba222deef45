"""The compiled matcher agrees with stix2-matcher (the OASIS reference) on every kind we publish, and with
``ipaddress`` on IPv6 ranges, which stix2-matcher cannot evaluate."""

import ipaddress
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stix2matcher.matcher import match as reference_match

from indicator_exchange.match.events import TrafficEvent
from indicator_exchange.match.matcher import CompiledIndicators
from indicator_exchange.stix.convert import convert
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
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.stix.patterns import prompt_observable, stix_string
from indicator_exchange.stix.versioning import revoke

KEY = b"matcher-test-key"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
PUBLISHER = Publisher(
    identity_id="identity--b3d6a1f0-5c1e-4e0a-9d1f-0c2f4a6b8e21", organisation="Lab", community_key=KEY, key_id="k1"
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def common(**overrides: Any) -> Common:
    values: dict[str, Any] = {
        "detector": "t",
        "first_seen": NOW - timedelta(days=1),
        "last_seen": NOW,
        "confidence": 60,
        "tlp": Tlp.GREEN,
    }
    values.update(overrides)
    return Common(**values)


def indicator(item: DetectionInput) -> dict[str, Any]:
    return convert(item, publisher=PUBLISHER, now=NOW).indicators[-1]


def compiled(*indicators: dict[str, Any], min_lsh_bands: int = 1) -> CompiledIndicators:
    return CompiledIndicators.build(indicators, community_key=KEY, key_id="k1", now=NOW, min_lsh_bands=min_lsh_bands)


def observed(event: TrafficEvent) -> list[dict[str, Any]]:
    """The event as a partner's STIX 2.1 bundle (SCOs plus observed-data), for stix2-matcher."""
    at = event.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    scos: list[dict[str, Any]] = []
    account_id = f"user-account--{uuid.uuid4()}"
    if event.source_ip:
        family = "ipv4-addr" if ipaddress.ip_address(event.source_ip).version == 4 else "ipv6-addr"
        scos.append({"type": family, "id": f"{family}--{uuid.uuid4()}", "value": event.source_ip})
    if event.asn is not None:
        scos.append({"type": "autonomous-system", "id": f"autonomous-system--{uuid.uuid4()}", "number": event.asn})
    if event.account_login or event.email:
        scos.append(
            {
                "type": "user-account",
                "id": account_id,
                "account_login": event.account_login or "",
                "account_type": "x-llm-api",
            }
        )
    if event.email:
        scos.append(
            {
                "type": "email-addr",
                "id": f"email-addr--{uuid.uuid4()}",
                "value": event.email,
                "belongs_to_ref": account_id,
            }
        )
    if event.prompt_text:
        scos.append(prompt_observable(fingerprint_prompt(event.prompt_text, key=KEY, key_id="k1")))
    for kind, value in (event.identifiers or {}).items():
        scos.append(
            {
                "type": "x-hashed-identifier",
                "id": f"x-hashed-identifier--{uuid.uuid4()}",
                "identifier_type": kind,
                "key_id": "k1",
                "value": hmac_identifier(KEY, kind, value),
            }
        )
    scos = [dict(s, spec_version="2.1") for s in scos]
    data = {
        "type": "observed-data",
        "id": f"observed-data--{uuid.uuid4()}",
        "spec_version": "2.1",
        "first_observed": at,
        "last_observed": at,
        "number_observed": 1,
        "created": at,
        "modified": at,
        "object_refs": [s["id"] for s in scos],
    }
    return [{"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [data, *scos]}]


def agree(ind: dict[str, Any], event: TrafficEvent) -> bool:
    ours = bool(compiled(ind).match_one(event))
    theirs = bool(reference_match(ind["pattern"], observed(event), stix_version="2.1"))
    assert ours == theirs, (ind["pattern"], event)
    return ours


octet = st.integers(0, 255)
ipv4 = st.builds(lambda a, b: f"46.154.{a}.{b}", st.integers(100, 101), octet)


class TestAgreementWithStix2Matcher:
    @FAST
    @given(target=ipv4, seen=ipv4)
    def test_ipv4_address(self, target: str, seen: str) -> None:
        ind = indicator(ProxyInput(common=common(), proxy_kind="residential", value=target))
        assert agree(ind, TrafficEvent(timestamp=NOW, source_ip=seen)) == (target == seen)

    @FAST
    @given(network=st.builds(lambda a, p: f"46.154.{a}.0/{p}", st.integers(100, 101), st.integers(16, 30)), seen=ipv4)
    def test_ipv4_cidr(self, network: str, seen: str) -> None:
        ind = indicator(ProxyInput(common=common(), proxy_kind="datacenter", value=network))
        expected = ipaddress.ip_address(seen) in ipaddress.ip_network(network, strict=False)
        assert agree(ind, TrafficEvent(timestamp=NOW, source_ip=seen)) == expected

    @FAST
    @given(asn=st.integers(264496, 264499), seen=st.integers(264496, 264499))
    def test_asn(self, asn: int, seen: int) -> None:
        ind = indicator(ProxyInput(common=common(), proxy_kind="residential", asn=asn))
        assert agree(ind, TrafficEvent(timestamp=NOW, source_ip="46.133.2.1", asn=seen)) == (asn == seen)

    @FAST
    @given(
        domains=st.lists(st.sampled_from(["a-mail.example", "b.example", "tmp.example"]), min_size=1, unique=True),
        seen=st.sampled_from(["x@a-mail.example", "y@b.example", "z@c.example", "w@tmp.example"]),
    )
    def test_email_domains(self, domains: list[str], seen: str) -> None:
        ind = indicator(AccountInput(common=common(), email_domains=tuple(domains)))
        assert agree(ind, TrafficEvent(timestamp=NOW, email=seen)) == (seen.split("@")[1] in domains)

    @FAST
    @given(login=st.sampled_from(["lena.kowalski8841", "lkowalski", "a.b1234", "A.b1234", "x.y12345"]))
    def test_login_regex(self, login: str) -> None:
        ind = indicator(AccountInput(common=common(), login_regex="^[a-z]+\\.[a-z]+[0-9]{4}$"))
        agree(ind, TrafficEvent(timestamp=NOW, account_login=login))

    @FAST
    @given(seen=st.sampled_from(["Fresh.Signup@x.example", " fresh.signup@X.EXAMPLE ", "other@x.example"]))
    def test_hashed_identifiers(self, seen: str) -> None:
        ind = indicator(AccountInput(common=common(), identifiers=(Identifier("email", "fresh.signup@x.example"),)))
        assert agree(ind, TrafficEvent(timestamp=NOW, identifiers={"email": seen})) == ("fresh" in seen.lower())

    def test_prompt_exact_and_lsh(self) -> None:
        base = (
            "You are an expert mathematician. Solve the following problem. Think step by step and write out "
            "your complete chain of reasoning inside <thinking> tags before giving the final answer. Problem: "
        )
        fp = fingerprint_prompt(base + "What is 17 * 23?", key=KEY, key_id="k1")
        item = PromptInput(common=common(), capability="cot-elicitation", sha256=fp.sha256, fingerprint=fp)
        exact, near = convert(item, publisher=PUBLISHER, now=NOW).indicators
        for text, expected_exact, expected_near in [
            (base + "What is 17 * 23?", True, True),
            (base.upper() + "what is 17 * 23", True, True),
            (base + "How many primes are below 100?", False, True),
            ("Write a short birthday message for my grandmother who loves gardening and turns ninety.", False, False),
        ]:
            event = TrafficEvent(timestamp=NOW, prompt_text=text)
            assert agree(exact, event) == expected_exact
            assert agree(near, event) == expected_near

    def test_signup_cadence_counts_events_within_the_window(self) -> None:
        ind = indicator(AccountInput(common=common(), cadence=Cadence(5, 3600, "burst.example")))
        matcher = compiled(ind)
        burst = [TrafficEvent(timestamp=NOW + timedelta(minutes=i), email=f"u{i}@burst.example") for i in range(6)]
        hits = [bool(matcher.match_one(e, i)) for i, e in enumerate(burst)]
        assert hits == [False, False, False, False, True, True]
        slow = compiled(ind)
        spread = [TrafficEvent(timestamp=NOW + timedelta(hours=2 * i), email=f"u{i}@burst.example") for i in range(6)]
        assert not any(slow.match_one(e, i) for i, e in enumerate(spread))
        observations = [observed(e)[0] for e in burst[:5]]
        assert reference_match(ind["pattern"], observations, stix_version="2.1")


class TestIpv6:
    @FAST
    @given(prefix=st.integers(32, 64), seen=st.integers(0, 2**80 - 1))
    def test_ipv6_ranges_agree_with_ipaddress(self, prefix: int, seen: int) -> None:
        network = ipaddress.ip_network(f"2a00:1111::/{prefix}", strict=False)
        address = ipaddress.IPv6Address(int(ipaddress.IPv6Address("2a00:1111::")) + seen)
        ind = indicator(ProxyInput(common=common(), proxy_kind="datacenter", value=network.compressed))
        got = bool(compiled(ind).match_one(TrafficEvent(timestamp=NOW, source_ip=str(address))))
        assert got == (address in network)

    def test_ipv4_events_never_match_ipv6_indicators(self) -> None:
        ind = indicator(ProxyInput(common=common(), proxy_kind="datacenter", value="::/0"))
        assert not compiled(ind).match_one(TrafficEvent(timestamp=NOW, source_ip="46.112.100.1"))


class TestIndexFiling:
    @FAST
    @given(
        text=st.ip_addresses(v=4).map(str)
        | st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?\Z")
        | st.text("0123456789./ \n\u0661", max_size=20),
        kind=st.sampled_from(["ipv4-addr", "ipv6-addr"]),
    )
    @example(text="01.2.3.4", kind="ipv4-addr")
    @example(text="1.2.3.256", kind="ipv4-addr")
    @example(text="1.2.3.4\n", kind="ipv4-addr")
    @example(text="\u0661.2.3.4", kind="ipv4-addr")
    @example(text="0.0.0.0", kind="ipv6-addr")
    def test_addresses_are_filed_where_ipaddress_files_them(self, text: str, kind: str) -> None:
        # Plain dotted quads skip ipaddress when the index is built; the index must not notice.
        ind = dict(
            indicator(ProxyInput(common=common(), proxy_kind="residential", value="46.112.100.9")),
            pattern=f"[{kind}:value = {stix_string(text)}]",
        )
        try:
            network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = ipaddress.ip_network(text, strict=False)
        except ValueError:
            network = None
        exact = compiled(ind)._exact_ip
        if network is not None and network.num_addresses == 1:
            assert {n: [e.indicator_id for e in entries] for n, entries in exact.items()} == {
                int(network.network_address): [ind["id"]]
            }
        else:
            assert not exact


class TestActivity:
    def test_revoked_and_expired_indicators_never_match(self) -> None:
        live = indicator(ProxyInput(common=common(), proxy_kind="residential", value="46.112.100.9"))
        revoked = revoke(live, NOW)
        expired = dict(live, valid_until="2026-01-01T00:00:00Z")
        future = dict(live, valid_from="2027-01-01T00:00:00Z")
        event = TrafficEvent(timestamp=NOW, source_ip="46.112.100.9")
        assert compiled(live).match_one(event)
        for dead in (revoked, expired, future):
            assert not compiled(dead).match_one(event)

    def test_a_single_shared_band_is_only_a_candidate(self) -> None:
        fp = fingerprint_prompt("x" * 80, key=KEY, key_id="k1")
        ind = dict(
            indicator(ProxyInput(common=common(), proxy_kind="residential", value="46.112.100.9")),
            pattern=f"[x-llm-prompt:lsh_bands[*] IN ('{fp.lsh_bands[0]}', '99:0000000000000000')]",
        )
        event = TrafficEvent(timestamp=NOW, prompt_text="x" * 80)
        assert not compiled(ind, min_lsh_bands=2).match_one(event)
        (candidate,) = compiled(ind, min_lsh_bands=1).match_one(event)
        assert candidate.verified is False

    def test_unsupported_patterns_are_reported_not_guessed(self) -> None:
        odd = dict(
            indicator(ProxyInput(common=common(), proxy_kind="residential", value="46.112.100.9")),
            pattern="[ipv4-addr:value = '46.112.100.9'] FOLLOWEDBY [ipv4-addr:value = '46.112.100.10']",
        )
        matcher = compiled(odd)
        assert odd["id"] in matcher.skipped
