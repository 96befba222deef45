"""Each signal on its own: families, infrastructure synchronisation, registration waves, focus, union-find."""

import random

from indicator_exchange.detect import shingles
from indicator_exchange.detect.config import DetectConfig
from indicator_exchange.detect.signals import logins
from indicator_exchange.detect.signals.families import Family, FamilyIndex
from indicator_exchange.detect.signals.focus import capability, focus
from indicator_exchange.detect.signals.infra import InfraIndex
from indicator_exchange.detect.signals.waves import WaveIndex
from indicator_exchange.detect.unionfind import UnionFind
from tests.detect.traffic import REACT, honest_prompt, template_prompt

CONFIG = DetectConfig()


def _file(index: FamilyIndex, texts: list[str], accounts: list[str]) -> list[int]:
    keys = shingles.band_keys(texts)
    return [index.add(a, 0.0, k, t) for a, k, t in zip(accounts, keys, texts, strict=True)]


class TestBandKeys:
    def test_case_and_punctuation_do_not_matter(self) -> None:
        assert shingles.band_keys(["Hello, World! Again."]) == shingles.band_keys(["hello world again "])

    def test_texts_too_short_for_a_shingle_have_no_keys(self) -> None:
        assert shingles.band_keys(["hi", ""]) == [[0] * shingles.BANDS, [0] * shingles.BANDS]


class TestFamilies:
    def test_templated_prompts_form_one_family(self) -> None:
        rng = random.Random(1)
        index = FamilyIndex(CONFIG, [])
        texts = [template_prompt(rng) for _ in range(60)]
        ids = _file(index, texts, [f"a{n}" for n in range(60)])
        families = index.merged()
        biggest = max(families.values(), key=lambda f: f.prompts)
        assert biggest.prompts >= 55
        assert len(set(ids)) < 10

    def test_diverse_prompts_do_not(self) -> None:
        rng = random.Random(2)
        index = FamilyIndex(CONFIG, [])
        _file(index, [honest_prompt(rng) for _ in range(300)], [f"a{n}" for n in range(300)])
        assert all(len(f.accounts) < CONFIG.family_min_accounts for f in index.merged().values())

    def test_scaffold_prompts_join_the_allowlisted_family(self) -> None:
        index = FamilyIndex(CONFIG, shingles.band_keys([REACT]))
        texts = [REACT.replace("{tools}", f"tool{n}") for n in range(20)]
        _file(index, texts, [f"a{n}" for n in range(20)])
        counted = [f for f in index.merged().values() if not f.allowlisted and f.prompts > 1]
        assert counted == []

    def test_one_prompt_families_are_pruned_after_two_periods(self) -> None:
        rng = random.Random(3)
        index = FamilyIndex(CONFIG, [])
        _file(index, [honest_prompt(rng) for _ in range(50)], [f"a{n}" for n in range(50)])
        before = index.size
        index.prune()
        assert index.size == before
        index.prune()
        assert index.size == 0


class TestInfra:
    def _index(self) -> InfraIndex:
        index = InfraIndex(CONFIG)
        for bucket in range(3):
            for n in range(10):
                index.add(f"camp{n}", ["ip:45.77.10.11", "net:45.77.10.0/24"], bucket)
            for n in range(200):
                index.add(f"nat{n}", ["ip:100.64.0.1"], bucket)
        return index

    def test_a_family_concentrated_on_a_key_in_several_buckets_is_linked(self) -> None:
        links = self._index().sync_links([f"camp{n}" for n in range(10)], population=1000, config=CONFIG)
        assert {link.key for link in links} == {"ip:45.77.10.11", "net:45.77.10.0/24"}
        assert all(len(link.accounts) == 10 and link.buckets == 3 for link in links)

    def test_a_family_at_its_population_share_on_a_nat_is_not(self) -> None:
        # 20 of the NAT's 200 accounts, and 20 of a population of 200: the family is no commoner there (lift 1).
        links = self._index().sync_links([f"nat{n}" for n in range(20)], population=200 * 1, config=CONFIG)
        assert links == []

    def test_one_bucket_is_not_sustained(self) -> None:
        index = InfraIndex(CONFIG)
        for n in range(10):
            index.add(f"camp{n}", ["ip:45.77.10.11"], 0)
        assert index.sync_links([f"camp{n}" for n in range(10)], population=1000, config=CONFIG) == []

    def test_accounts_past_the_limit_are_counted_not_kept(self) -> None:
        index = InfraIndex(DetectConfig(key_max_accounts=16))
        for n in range(40):
            index.add(f"a{n}", ["ip:1.2.3.4"], 0)
        assert len(index.by_key["ip:1.2.3.4"]) == 16
        assert index.accounts_on("ip:1.2.3.4") == 40


class TestWaves:
    def test_a_burst_on_a_quiet_domain_is_a_wave(self) -> None:
        index = WaveIndex(CONFIG)
        for n in range(12):
            index.add(f"w{n}", 3600 + n * 10, ["domain:mailbox.top"])
        (wave,) = index.waves(window_seconds=86_400, config=CONFIG)
        assert (wave.key, len(wave.accounts)) == ("domain:mailbox.top", 12)

    def test_a_steady_domain_is_not(self) -> None:
        index = WaveIndex(CONFIG)
        for n in range(1440):  # one a minute all day: 10 per slot, at its own mean
            index.add(f"g{n}", n * 60, ["domain:gmail.com"])
        assert index.waves(window_seconds=86_400, config=CONFIG) == []

    def test_too_few_signups_are_not(self) -> None:
        index = WaveIndex(CONFIG)
        for n in range(5):
            index.add(f"w{n}", 100 + n, ["domain:small.example"])
        assert index.waves(window_seconds=86_400, config=CONFIG) == []


class TestFocus:
    def test_share_of_prompts_in_counted_families(self) -> None:
        family = Family(first_seen=0, last_seen=0, accounts={"narrow": 9, "broad": 1})
        assert focus([family], {"narrow": 10, "broad": 50}) == {"narrow": 0.9, "broad": 0.02}

    def test_capability_of_a_family(self) -> None:
        cot = Family(first_seen=0, last_seen=0, samples={"Solve this step by step, show your reasoning": 3})
        other = Family(first_seen=0, last_seen=0, samples={"write a limerick about cats": 3})
        assert (capability(cot), capability(other)) == ("cot-elicitation", "other")


class TestUnionFind:
    def test_components(self) -> None:
        groups: UnionFind[str] = UnionFind()
        groups.union_all(["a", "b", "c"])
        groups.union("d", "e")
        groups.find("f")
        assert sorted(sorted(g) for g in groups.groups()) == [["a", "b", "c"], ["d", "e"], ["f"]]


class TestLoginShapes:
    def test_a_generated_login_has_a_run_length_shape(self) -> None:
        assert logins.shape("user12345678") == "^[A-Za-z]{4}[0-9]{8}$"
        assert logins.shape("j.doe-1987x") == r"^[A-Za-z]\.[A-Za-z]{3}\-[0-9]{4}[A-Za-z]$"

    def test_a_plain_or_short_login_has_none(self) -> None:
        assert logins.shape("margaretsmith") is None  # letters only: says nothing
        assert logins.shape("bob42") is None  # too short
