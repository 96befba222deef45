"""The regex fast path of ``parse_pattern`` gives exactly what the stix2-patterns ANTLR path gives, on every
pattern the converter writes, and leaves every other shape to ANTLR."""

import ipaddress
import json
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicator_exchange.stix.convert import convert
from indicator_exchange.stix.detections import AccountInput, Cadence, DetectionInput, PromptInput, ProxyInput, ProxyKind
from indicator_exchange.stix.fingerprint import fingerprint_prompt
from indicator_exchange.stix.identifiers import Identifier
from indicator_exchange.stix.pattern_terms import (
    ParsedPattern,
    UnsupportedPattern,
    antlr_pattern,
    parse_pattern,
    simple_pattern,
)
from indicator_exchange.stix.patterns import stix_string
from tests.conftest import ROOT
from tests.stix.test_convert import CASES, NOW, PUBLISHER, common

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOLDEN = ROOT / "tests" / "data" / "golden"
# Any code point but surrogates, quotes and backslashes weighted in: the escapes are where a recogniser slips.
any_text = st.text(st.characters(codec="utf-8") | st.sampled_from("'\\ ,()[]"), max_size=40)


def parsed_or_error(pattern: str) -> ParsedPattern | str:
    try:
        return antlr_pattern(pattern)
    except (UnsupportedPattern, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def assert_fast_path_agrees(pattern: str) -> None:
    fast = simple_pattern(pattern)
    assert fast is not None, f"the fast path left a converter pattern to ANTLR: {pattern}"
    assert fast == antlr_pattern(pattern), pattern


def converted_patterns(item: DetectionInput) -> list[str]:
    return [i["pattern"] for i in convert(item, publisher=PUBLISHER, now=NOW).indicators]


class TestConverterPatterns:
    @pytest.mark.parametrize("name", sorted(CASES))
    def test_every_test_case_takes_the_fast_path(self, name: str) -> None:
        for pattern in converted_patterns(CASES[name]):
            assert_fast_path_agrees(pattern)

    @pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
    def test_every_golden_pattern_takes_the_fast_path(self, path: Path) -> None:
        for indicator in json.loads(path.read_text())["indicators"]:
            assert_fast_path_agrees(indicator["pattern"])

    @FAST
    @given(
        address=st.ip_addresses(),
        prefix=st.integers(0, 128),
        kind=st.sampled_from(get_args(ProxyKind)),
    )
    def test_addresses_and_ranges(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int, kind: ProxyKind
    ) -> None:
        network = ipaddress.ip_network(f"{address}/{min(prefix, address.max_prefixlen)}", strict=False)
        for value in (str(address), network.compressed):
            for pattern in converted_patterns(ProxyInput(common=common(), proxy_kind=kind, value=value)):
                assert_fast_path_agrees(pattern)

    @FAST
    @given(asn=st.integers(0, 2**32 - 1))
    def test_asns(self, asn: int) -> None:
        for pattern in converted_patterns(ProxyInput(common=common(), proxy_kind="residential", asn=asn)):
            assert_fast_path_agrees(pattern)

    @FAST
    @given(text=st.text(min_size=60, max_size=200), sha=st.text("0123456789abcdef", min_size=64, max_size=64))
    def test_prompts(self, text: str, sha: str) -> None:
        fingerprint = fingerprint_prompt(text, key=b"k", key_id="k")
        item = PromptInput(common=common(), capability="other", sha256=sha, fingerprint=fingerprint)
        for pattern in converted_patterns(item):
            assert_fast_path_agrees(pattern)

    @FAST
    @given(
        domains=st.lists(any_text.filter(str.strip), min_size=1, max_size=4),
        login=any_text,
        count=st.integers(1, 10**6),
        within=st.integers(1, 10**7),
    )
    def test_accounts_with_quotes_and_backslashes(
        self, domains: list[str], login: str, count: int, within: int
    ) -> None:
        items = [
            AccountInput(common=common(), email_domains=tuple(domains)),
            AccountInput(common=common(), login_regex=login),
            AccountInput(common=common(), cadence=Cadence(count, within, domains[0])),
        ]
        for item in items:
            for pattern in converted_patterns(item):
                assert_fast_path_agrees(pattern)

    @FAST
    @given(
        identifiers=st.lists(
            st.builds(Identifier, st.sampled_from(["email", "email-domain", "device"]), any_text)
            | st.builds(
                Identifier, st.just("phone"), st.from_regex(r"\+?[ .()-]{0,2}([0-9][ .()-]?){6,15}", fullmatch=True)
            ),
            min_size=1,
            max_size=5,
        )
    )
    def test_hashed_identifiers(self, identifiers: list[Identifier]) -> None:
        for pattern in converted_patterns(AccountInput(common=common(), identifiers=tuple(identifiers))):
            assert_fast_path_agrees(pattern)


# Pieces of patterns, valid and not: the fast path may decline any of them, but must never differ from ANTLR.
# Valid pieces come 6 times out of 7, so that many whole patterns are ones the fast path takes.
def mostly(valid: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(valid * -(-6 * len(odd) // len(valid)) + odd)


names = mostly(["a", "x-llm-prompt", "_t9", "b-c", "x-", "t", "h"], ["AND", "true", "IN", "TIMES", "9a"])
steps = mostly([".b", "[*]", ".'SHA-256'", ".'q\\'x\\\\'", ".c_ref"], ["[0]", "[-1]", ".OR", ".false", "-d", ". b"])
first_steps = mostly(["value", "lsh_bands[*]", "hashes", "b_ref"], ["'quoted'", "NOT", "9x", "a-b"])
ops = mostly(
    ["=", "!=", "<", "<=", ">", ">=", "IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"],
    ["==", "<>", "NOT =", "NOT IN", "NOT MATCHES", "EXISTS", "in"],
)
strings = any_text.map(stix_string)
integers = st.integers(-(10**20), 10**20).map(str)
lists = st.lists(strings | integers, max_size=4).map(lambda items: "(" + ", ".join(items) + ")")
odd_literals = [
    "1.5",
    "true",
    "h'00'",
    "b'AA=='",
    "t'2026-01-01T00:00:00Z'",
    "+5",
    "007",
    "-0",
    "'a\\nb'",
    "'open",
    "''",
]
literals = st.one_of(strings, integers, st.sampled_from(odd_literals))
values = st.one_of(literals, st.lists(literals, max_size=4).map(lambda items: "(" + ", ".join(items) + ")"))
spaces = mostly([" "], ["  ", "", "\t", "\n"])


@st.composite
def comparisons(draw: st.DrawFn, object_type: str) -> str:
    path = draw(first_steps) + "".join(draw(st.lists(steps, max_size=2)))
    op = draw(ops)
    if draw(st.integers(0, 3)):  # mostly a literal of a kind the operator takes
        value = draw(lists if op.endswith("IN") else strings if op[-1].isalpha() else strings | integers)
    else:
        value = draw(values)
    return f"{object_type}:{path}{draw(spaces)}{op}{draw(spaces)}{value}"


@st.composite
def observations(draw: st.DrawFn) -> str:
    object_type = draw(names)
    parts = draw(
        st.lists(comparisons(draw(names) if draw(st.integers(0, 4)) == 0 else object_type), min_size=1, max_size=3)
    )
    joined = parts[0] + "".join(f" {draw(mostly(['AND', 'OR'], ['FOLLOWEDBY', 'and']))} {p}" for p in parts[1:])
    qualifiers = draw(
        st.lists(
            mostly(
                [" REPEATS 3 TIMES", " WITHIN 60 SECONDS"],
                [
                    " REPEATS 0 TIMES",
                    " WITHIN 1.5 SECONDS",
                    " REPEATS 2 TIMESX",
                    " START t'2026-01-01T00:00:00Z' STOP t'2026-01-02T00:00:00Z'",
                ],
            ),
            max_size=2,
        )
    )
    return f"[{draw(spaces)}{joined}{draw(spaces)}]" + "".join(qualifiers)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = draw(st.lists(observations(), min_size=1, max_size=3))
    joined = parts[0] + "".join(f" {draw(mostly(['OR'], ['AND', 'FOLLOWEDBY']))} {p}" for p in parts[1:])
    return f"({joined})" if draw(st.booleans()) and len(parts) == 1 else joined


@st.composite
def simple_patterns(draw: st.DrawFn) -> str:
    """Shapes the fast path must take: one object type per AND group, literals of the types each operator takes."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        object_type = draw(st.sampled_from(["a", "x-llm-prompt", "_t9", "b-c", "x-"]))
        groups = []
        for _ in range(draw(st.integers(1, 3))):
            terms = []
            for _ in range(draw(st.integers(1, 3))):
                path = draw(st.sampled_from(["value", "lsh_bands[*]", "hashes.'SHA-256'", "b_ref.c[*].d", "x.'q\\'x'"]))
                op = draw(st.sampled_from(["=", "!=", "<", ">=", "IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"]))
                text = draw(any_text.map(stix_string))
                number = str(draw(st.integers(-(10**20), 10**20)))
                if op == "IN":
                    value = "(" + ", ".join(draw(st.lists(st.sampled_from([text, number]), max_size=4))) + ")"
                else:
                    value = text if op not in ("=", "!=", "<", ">=") or draw(st.booleans()) else number
                terms.append(f"{object_type}:{path} {op} {value}")
            groups.append(" AND ".join(terms))
        qualifier = ""
        if len(groups) == 1:
            qualifier = draw(
                st.sampled_from(
                    [
                        "",
                        " REPEATS 3 TIMES",
                        " WITHIN 60 SECONDS",
                        " REPEATS 20 TIMES WITHIN 3600 SECONDS",
                        " WITHIN 5 SECONDS REPEATS 2 TIMES",
                    ]
                )
            )
        out.append("[" + " OR ".join(groups) + "]" + qualifier)
    return " OR ".join(out)


class TestGeneratedPatterns:
    @FAST
    @given(pattern=simple_patterns())
    def test_simple_shapes_take_the_fast_path(self, pattern: str) -> None:
        assert_fast_path_agrees(pattern)

    @FAST
    @given(pattern=patterns())
    def test_any_shape_the_fast_path_takes_agrees_with_antlr(self, pattern: str) -> None:
        fast = simple_pattern(pattern)
        if fast is not None:
            assert parsed_or_error(pattern) == fast


class TestFallback:
    @pytest.mark.parametrize(
        "pattern",
        [
            "[a:b NOT = 'x']",  # negation: stix2 keeps it for equality only
            "[a:b == 'x']",
            "[a:b<>'x']",
            "[a:b='x']",  # valid, but the fast path wants spaces around operators
            "([a:b = 'x'])",
            "[(a:b = 'x' OR a:c = 'y') AND a:d = 'z']",
            "[a:b = 'x'] AND [c:d = 'y']",
            "[a:b = 'x'] FOLLOWEDBY [c:d = 'y']",
            "[a:b = 'x'] START t'2026-01-01T00:00:00Z' STOP t'2026-01-02T00:00:00Z'",
            "[a:b[0] = 'x']",
            "[a:'b' = 'x']",
            "[a:b = 1.5]",
            "[a:b = true]",
            "[a:b = h'00ff']",
            "[a:b = t'2026-01-01T00:00:00Z']",
            "[a:b EXISTS]",
            "[a:b = 'x' AND c:d = 'y']",  # two object types in one AND group
            "[a:b = 'x' OR a:c = 'y'] REPEATS 2 TIMES",  # a qualifier over an OR
            "[a:b = 'x'] REPEATS 0 TIMES",
            "[a:b = 'x'] REPEATS 2 TIMES REPEATS 3 TIMES",
            "[a:b = 'x'] WITHIN 1.5 SECONDS",
            "[a:b = 'x']\t",
            "[a:b = 'x\\n']",  # invalid: \n is no escape in a STIX string
            "[a:AND = 'x']",  # invalid: a keyword as a property name
            "[true:b = 'x']",
            "[a:b = 'x'",
            "[a:b = 007]",
            "[a:b ISSUBSET 5]",
            "",
        ],
    )
    def test_other_shapes_go_to_antlr(self, pattern: str) -> None:
        assert simple_pattern(pattern) is None
        parse_pattern.cache_clear()
        try:
            result: ParsedPattern | str = parse_pattern(pattern)
        except (UnsupportedPattern, ValueError) as exc:
            result = f"{type(exc).__name__}: {exc}"
        assert result == parsed_or_error(pattern)
