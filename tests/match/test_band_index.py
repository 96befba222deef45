"""The LSH band index agrees with a brute-force set intersection per indicator, which is what the matcher
did before band-set groups and integer posting lists."""

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicator_exchange.match.events import Match, TrafficEvent
from indicator_exchange.match.matcher import VERIFIED_LSH_BANDS, CompiledIndicators, _BandIndex
from indicator_exchange.stix.fingerprint import prompt_signatures

KEY = b"band-index-test-key"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXTS = [
    "Solve step by step and show all reasoning inside thinking tags. Task 7: compute 7 times 14 and explain it.",
    "Solve step by step and show all reasoning inside thinking tags. Task 8: compute the product and explain it.",
    "Translate the following paragraph into French and keep every technical term exactly as written here.",
    "Write a short birthday message for my grandmother who loves gardening and turns ninety this year.",
]
BANDS = [prompt_signatures(text, key=KEY)[1] for text in TEXTS]
band_pool = st.sampled_from([*sorted({band for bands in BANDS for band in bands}), "99:0000000000000000"])
band_sets = st.frozensets(band_pool, max_size=40)


def lsh_indicator(number: int, bands: frozenset[str], *, extra: str = "") -> dict[str, Any]:
    listed = ", ".join(f"'{b}'" for b in sorted(bands))
    return {
        "type": "indicator",
        "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "pattern": f"[x-llm-prompt:lsh_bands[*] IN ({listed}){extra}]",
        "valid_from": "2026-11-01T00:00:00Z",
    }


def brute_force(
    indicators: list[tuple[dict[str, Any], frozenset[str]]], event_bands: frozenset[str], least: int
) -> dict[str, bool]:
    """indicator id -> verified, by intersecting every indicator's bands with the event's."""
    expected = {}
    for ind, bands in indicators:
        shared = len(bands & event_bands)
        if shared >= max(1, least):
            expected[ind["id"]] = shared >= VERIFIED_LSH_BANDS
    return expected


class TestBandIndex:
    @FAST
    @given(groups=st.lists(band_sets, max_size=30), event=band_sets, least=st.integers(1, 4), dense=st.booleans())
    def test_shared_counts_agree_with_set_intersection(
        self, groups: list[frozenset[str]], event: frozenset[str], least: int, dense: bool
    ) -> None:
        postings: dict[str, list[int]] = {}
        for number, bands in enumerate(groups):
            for band in bands:
                postings.setdefault(band, []).append(number)
        # A large group count forces the sort-based count (np.unique) instead of np.bincount.
        index = _BandIndex(postings, len(groups) if dense else 10**9)
        found, counts = index.shared(sorted(event), least)
        expected = [(n, len(b & event)) for n, b in enumerate(groups) if len(b & event) >= least]
        assert list(zip(found, counts, strict=True)) == expected

    @FAST
    @given(groups=st.lists(band_sets, max_size=8), event=band_sets, least=st.integers(1, 4))
    def test_bands_of_one_group_each_are_counted_without_numpy(
        self, groups: list[frozenset[str]], event: frozenset[str], least: int
    ) -> None:
        # Each band kept only in the first group listing it: every posting list has one group, as in a feed of
        # unrelated prompt families.
        seen: set[str] = set()
        owned = []
        for bands in groups:
            owned.append(bands - seen)
            seen |= bands
        postings = {band: [n] for n, bands in enumerate(owned) for band in bands}
        found, counts = _BandIndex(postings, len(owned)).shared(sorted(event), least)
        expected = [(n, len(b & event)) for n, b in enumerate(owned) if len(b & event) >= least]
        assert list(zip(found, counts, strict=True)) == expected

    def test_thaw_gives_back_the_posting_lists(self) -> None:
        postings = {"a": [0, 2], "b": [1], "c": [0, 1, 2]}
        assert _BandIndex(postings, 3).thaw() == postings


class TestLshMatching:
    @FAST
    @given(
        sets=st.lists(band_sets, min_size=1, max_size=12),
        copies=st.integers(1, 3),
        text=st.sampled_from(TEXTS),
        least=st.integers(0, 3),
    )
    def test_matches_agree_with_brute_force(
        self, sets: list[frozenset[str]], copies: int, text: str, least: int
    ) -> None:
        # Several indicators per band set, as when many detectors report one prompt.
        indicators = [(lsh_indicator(n, bands), bands) for n, bands in enumerate(sets * copies) if bands]
        compiled = CompiledIndicators.build(
            [ind for ind, _ in indicators], community_key=KEY, key_id="k", now=NOW, min_lsh_bands=least
        )
        matches = compiled.match_one(TrafficEvent(timestamp=NOW, prompt_text=text), 3)
        event_bands = frozenset(prompt_signatures(text, key=KEY)[1])
        assert {m.indicator_id: m.verified for m in matches} == brute_force(indicators, event_bands, least)
        assert len({m.indicator_id for m in matches}) == len(matches)
        assert all(type(m) is Match and m.event_index == 3 for m in matches)

    def test_observations_with_more_terms_are_checked_term_by_term(self) -> None:
        bands = frozenset(BANDS[0])
        holds = lsh_indicator(1, bands, extra=" AND x-llm-prompt:normalization = 'llmsig-norm-v1'")
        fails = lsh_indicator(2, bands, extra=" AND x-llm-prompt:normalization = 'other'")
        compiled = CompiledIndicators.build([holds, fails], community_key=KEY, key_id="k", now=NOW)
        matches = compiled.match_one(TrafficEvent(timestamp=NOW, prompt_text=TEXTS[0]))
        assert [m.indicator_id for m in matches] == [holds["id"]]

    def test_repeats_count_per_indicator_in_a_shared_band_set(self) -> None:
        bands = frozenset(BANDS[0])
        twice = lsh_indicator(1, bands)
        twice["pattern"] += " REPEATS 2 TIMES WITHIN 60 SECONDS"
        once = lsh_indicator(2, bands)
        compiled = CompiledIndicators.build([twice, once], community_key=KEY, key_id="k", now=NOW)
        first, second = (
            compiled.match_one(TrafficEvent(timestamp=NOW + timedelta(seconds=s), prompt_text=TEXTS[0]))
            for s in (0, 10)
        )
        assert [m.indicator_id for m in first] == [once["id"]]
        assert sorted(m.indicator_id for m in second) == sorted([once["id"], twice["id"]])

    def test_indicators_added_after_matching_are_found(self) -> None:
        compiled = CompiledIndicators.build(
            [lsh_indicator(1, frozenset(BANDS[0]))], community_key=KEY, key_id="k", now=NOW
        )
        event = TrafficEvent(timestamp=NOW, prompt_text=TEXTS[0])
        assert len(compiled.match_one(event)) == 1
        compiled.add(lsh_indicator(2, frozenset(BANDS[0])), [])
        compiled.add(lsh_indicator(3, frozenset(BANDS[0][:3])), [])
        assert len(compiled.match_one(event)) == 3

    def test_matches_equal_validated_matches(self) -> None:
        compiled = CompiledIndicators.build(
            [lsh_indicator(1, frozenset(BANDS[0]))],
            community_key=KEY,
            key_id="k",
            now=NOW,
            campaigns={"indicator--00000000-0000-4000-8000-000000000001": ["campaign--1"]},
        )
        (match,) = compiled.match_one(TrafficEvent(timestamp=NOW, event_id="e1", prompt_text=TEXTS[0]), 5)
        assert match == Match(
            event_index=5,
            event_id="e1",
            timestamp=NOW,
            indicator_id="indicator--00000000-0000-4000-8000-000000000001",
            kind="prompt_signature",
            campaign_ids=["campaign--1"],
            matched="x-llm-prompt:lsh_bands[*] IN (32 values)",
            verified=True,
        )
