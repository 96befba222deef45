"""Warninglists: every kind (IPv4, IPv6, CIDR overlap both ways, ASN, domain suffix) refuses or flags as
configured; the policy file relaxes a list only explicitly; the addresses the tests and the demo use are on none."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from indicator_exchange.lifecycle import warninglists
from indicator_exchange.lifecycle.warninglists import WarninglistFileError, Warninglists
from indicator_exchange.settings import Settings

DOCUMENTATION = "iana-documentation (RFC 5737, RFC 3849, RFC 9637)"
# The ordinary addresses that replaced the documentation ranges in tests, examples and the demo (issue 17 §5).
REPLACEMENTS = ["46.91.113.0/24", "46.112.100.0/24", "46.133.2.0/24", "46.154.0.0/16", "2a00:1111::/32"]
REPLACEMENT_ASNS = range(264496, 264512)


@pytest.fixture(scope="module")
def full() -> Warninglists:
    """The full MISP lists with the built-in policies (the process cache: built once)."""
    return warninglists.cached(None, 16, 32)


def operator_lists(tmp_path: Path, **policies: str) -> Warninglists:
    path = tmp_path / "warninglists.json"
    path.write_text(
        json.dumps(
            {
                "policies": policies,
                "lists": [
                    {
                        "name": "office",
                        "policy": "refuse",
                        "networks": ["81.2.69.0/24", "2a02:c7f:1::/48"],
                        "asns": [[398000, 398010]],
                        "domains": ["example-partner.org"],
                    },
                    {
                        "name": "watch",
                        "policy": "flag",
                        "networks": ["81.3.0.0/24"],
                        "asns": [399001],
                        "domains": ["watched.example"],
                    },
                ],
            }
        )
    )
    return warninglists.build(str(path), misp=False)


def names(verdict: warninglists.Verdict) -> tuple[list[str], list[str]]:
    return [h.list_name for h in verdict.refused], [h.list_name for h in verdict.flagged]


class TestKinds:
    def test_ipv4(self, tmp_path: Path) -> None:
        lists = operator_lists(tmp_path)
        assert names(lists.check_network("81.2.69.77")) == (["office"], [])
        assert names(lists.check_network("81.3.0.9")) == ([], ["watch"])
        assert lists.check_network("81.2.70.1").clean

    def test_ipv6(self, tmp_path: Path) -> None:
        lists = operator_lists(tmp_path)
        assert names(lists.check_network("2a02:c7f:1::5")) == (["office"], [])
        assert names(lists.check_network("2001:db8::1")) == ([DOCUMENTATION], [])
        assert lists.check_network("2a02:c7f:2::5").clean

    def test_a_range_inside_a_listed_range(self, tmp_path: Path) -> None:
        assert names(operator_lists(tmp_path).check_network("81.2.69.128/25")) == (["office"], [])

    def test_a_range_holding_a_listed_range(self, tmp_path: Path) -> None:
        assert names(operator_lists(tmp_path).check_network("81.2.0.0/16")) == (["office"], [])
        assert names(operator_lists(tmp_path).check_network("2a02:c7f::/32")) == (["office"], [])

    def test_ranges_broader_than_the_limit_are_refused(self, tmp_path: Path) -> None:
        refused, _ = names(operator_lists(tmp_path).check_network("46.0.0.0/15"))
        assert refused == ["broader than /16 (IX_WARNINGLIST_MAX_PREFIX_V4)"]

    def test_asn(self, tmp_path: Path) -> None:
        lists = operator_lists(tmp_path)
        assert names(lists.check_asn(398005)) == (["office"], [])
        assert names(lists.check_asn(399001)) == ([], ["watch"])
        assert names(lists.check_asn(64500)) == (["iana-documentation-asn (RFC 5398)"], [])
        assert lists.check_asn(13335).clean

    def test_domain_suffix(self, tmp_path: Path) -> None:
        lists = operator_lists(tmp_path)
        assert names(lists.check_domain("mail.example-partner.org")) == (["office"], [])
        assert names(lists.check_domain("Example-Partner.org.")) == (["office"], [])
        assert names(lists.check_domain("watched.example")) == ([], ["watch"])
        assert lists.check_domain("partner.org").clean
        assert lists.check_domain("notexample-partner.org").clean


class TestMisp:
    def test_public_resolvers_and_special_ranges_are_refused(self, full: Warninglists) -> None:
        assert "List of known IPv4 public DNS resolvers" in names(full.check_network("8.8.8.8"))[0]
        assert DOCUMENTATION in names(full.check_network("203.0.113.57"))[0]
        assert "iana-shared-address-space (RFC 6598 carrier-grade NAT)" in names(full.check_network("100.64.3.4"))[0]

    def test_cloud_ranges_are_flagged(self, full: Warninglists) -> None:
        refused, flagged = names(full.check_network("52.95.110.1"))
        assert refused == []
        assert "List of known Amazon AWS IP address ranges" in flagged

    def test_top_domains_are_refused(self, full: Warninglists) -> None:
        assert full.check_domain("mail.google.com").refused

    def test_the_addresses_tests_and_the_demo_use_are_on_no_list(self, full: Warninglists) -> None:
        for network in REPLACEMENTS:
            assert full.check_network(network).clean, network
        for asn in REPLACEMENT_ASNS:
            assert full.check_asn(asn).clean, asn

    def test_no_documentation_range_is_left_in_the_tests_or_the_demo(self) -> None:
        root = Path(__file__).resolve().parents[2]
        pattern = ("203.0.113.", "198.51.100.", "192.0.2.", "2001:db8")
        offenders = []
        for folder in ("tests", "indicator_exchange", "schemas", "bench"):
            for path in (root / folder).rglob("*"):
                if path.suffix not in (".py", ".json", ".ndjson", ".md") or "lifecycle" in path.parts:
                    continue
                if any(p in path.read_text(errors="replace").lower() for p in pattern):
                    offenders.append(str(path.relative_to(root)))
        assert offenders == []


class TestPolicyFile:
    def test_a_list_is_relaxed_only_explicitly(self, tmp_path: Path) -> None:
        relaxed = operator_lists(tmp_path, **{DOCUMENTATION: "off"})
        assert relaxed.check_network("192.0.2.10").clean
        flagged = operator_lists(tmp_path, **{DOCUMENTATION: "flag"})
        assert names(flagged.check_network("192.0.2.10")) == ([], [DOCUMENTATION])

    def test_an_unknown_list_name_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(WarninglistFileError, match="unknown lists: no such list"):
            operator_lists(tmp_path, **{"no such list": "off"})

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("[]", "must be"),
            ('{"policies": {"x": "ignore"}}', "policies must map list names"),
            ('{"lists": [{"name": "a", "networks": ["300.1.1.1"]}]}', "lists\\[0\\].networks"),
            ('{"lists": [{"name": "a", "asns": [[5, 1]]}]}', "is not an AS number"),
            ('{"lists": [{"policy": "refuse"}]}', "needs a name"),
        ],
    )
    def test_a_bad_file_stops_the_settings(self, tmp_path: Path, content: str, message: str) -> None:
        path = tmp_path / "warninglists.json"
        path.write_text(content)
        with pytest.raises(ValidationError, match=message):
            Settings(warninglist_file=str(path))
