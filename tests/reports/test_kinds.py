"""Indicator kinds read from STIX patterns (docs/design.md, D2 to D4)."""

import pytest

from indicator_exchange.reports.kinds import kind_of_pattern


class TestKindOfPattern:
    @pytest.mark.parametrize(
        ("pattern", "kind"),
        [
            ("[ipv4-addr:value ISSUBSET '46.112.100.0/24']", "proxy_ip"),
            ("[ipv6-addr:value = '2a00:1111::1']", "proxy_ip"),
            ("[autonomous-system:number = 264496]", "proxy_ip"),
            ("[x-llm-prompt:hashes.'SHA-256' = 'ab']", "prompt_signature"),
            ("[x-llm-prompt:lsh_bands[*] IN ('a', 'b')]", "prompt_signature"),
            ("[email-addr:value MATCHES '^[a-z]+@x\\\\.com$']", "account_pattern"),
            ("[user-account:account_login MATCHES '^u[0-9]{6}$'] REPEATS 5 TIMES WITHIN 60 SECONDS", "account_pattern"),
            ("[x-hashed-identifier:value = 'ff']", "account_pattern"),
            ("[file:name = 'ipv4-addr:value']", "other"),  # a type name inside a literal is not a type
            ("[domain-name:value = 'example.com']", "other"),
            ("([domain-name:value = 'a.example'] AND [ipv4-addr:value = '46.133.2.1'])", "proxy_ip"),
        ],
    )
    def test_kinds(self, pattern: str, kind: str) -> None:
        assert kind_of_pattern(pattern) == kind

    @pytest.mark.parametrize("pattern", [None, 42, ""])
    def test_no_pattern_is_other(self, pattern: object) -> None:
        assert kind_of_pattern(pattern) == "other"
