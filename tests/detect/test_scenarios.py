"""Each signal fires or stays quiet on small crafted logs, and every hard negative stays quiet."""

import json
from datetime import timedelta

import jsonschema

from indicator_exchange.public_schemas import SCHEMA_DIR
from tests.detect.traffic import REACT, T0, VIRAL, Log, campaign, detect, flagged, honest_prompt, template_prompt, words


def _viral(rng: object) -> str:
    import random

    assert isinstance(rng, random.Random)
    return VIRAL.format(slot=words(rng, 3, 6)) if rng.random() < 0.5 else honest_prompt(rng)


class TestCampaigns:
    def test_a_proxy_pool_sharing_a_template_is_one_cluster(self) -> None:
        log = Log()
        log.honest_background()
        members = set(campaign(log))
        outcome = detect(log.bytes())
        assert [set(r.account_ids) for r in outcome.reports] == [members]
        report = outcome.reports[0]
        assert report.signals["infra"] == 1.0
        assert report.signals["family"] == 1.0
        assert {i.value for i in report.source_ips if i.published} == {f"45.77.10.{n}" for n in (11, 12, 13, 14)}
        assert report.prompt_families
        assert report.prompt_families[0].capability == "cot-elicitation"

    def test_detections_are_valid_ingest_input(self) -> None:
        log = Log()
        log.honest_background()
        campaign(log)
        outcome = detect(log.bytes())
        schema = json.loads((SCHEMA_DIR / "detection.schema.json").read_text())
        lines = [json.loads(d.model_dump_json(exclude_none=True)) for d in outcome.detections]
        validator = jsonschema.Draft202012Validator(schema)
        for line in lines:
            validator.validate(line)
        kinds = {line["kind"] for line in lines}
        assert kinds == {"proxy_ip", "prompt_signature"}
        assert {line["cluster"] for line in lines} == {outcome.reports[0].key}
        assert all("prompt_text" not in line for line in lines)
        clusters_schema = json.loads((SCHEMA_DIR / "detect-clusters.schema.json").read_text())
        jsonschema.validate(json.loads(outcome.clusters_file.model_dump_json()), clusters_schema)

    def test_a_signup_wave_on_a_throwaway_domain_links_accounts_without_shared_addresses(self) -> None:
        log = Log()
        log.honest_background()
        members = set()
        for n in range(12):  # each its own address: only the wave and the template tie them
            members |= set(
                log.accounts(
                    f"wave{n}",
                    1,
                    [f"203.0.{n}.9"],
                    9000 + n,
                    per_account=8,
                    prompt=template_prompt,
                    signup_at=3600,
                    domain="mailbox-z.top",
                )
            )
        outcome = detect(log.bytes())
        assert flagged(outcome) == members
        report = outcome.reports[0]
        assert report.signals["wave"] == 1.0
        assert report.signals["infra"] == 0.0
        patterns = [d for d in outcome.detections if d.kind == "account_pattern"]
        assert any(d.email_domains == ["mailbox-z.top"] for d in patterns)
        assert any(d.cadence is not None and d.cadence.email_domain == "mailbox-z.top" for d in patterns)
        assert not [d for d in outcome.detections if d.kind == "proxy_ip"]

    def test_a_campaign_blended_with_honest_prompts_is_still_found(self) -> None:
        log = Log()
        log.honest_background()

        def blended(rng: object) -> str:
            import random

            assert isinstance(rng, random.Random)
            return template_prompt(rng) if rng.random() < 0.6 else honest_prompt(rng)

        pool = ["45.77.10.11", "45.77.10.12", "45.77.10.13"]
        members = set(log.accounts("blend", 12, pool, 20473, per_account=14, prompt=blended))
        found = flagged(detect(log.bytes()))
        assert found <= members
        assert len(found) >= 11  # recall >= 0.9: an account whose few prompts were mostly honest may slip

    def test_a_farm_naming_scheme_is_published_as_a_login_shape(self) -> None:
        log = Log()
        log.honest_background()
        members = set(campaign(log))
        for event in log.events:  # farm logins 'hx' + 8 digits; honest users pick their own names
            account = event["account_id"]
            event["account_login"] = f"hx{10_000_000 + int(account[-4:])}" if account in members else f"{account}.name"
        outcome = detect(log.bytes())
        assert flagged(outcome) == members
        shapes = [d.login_regex for d in outcome.detections if d.kind == "account_pattern" and d.login_regex]
        assert shapes == ["^[A-Za-z]{2}[0-9]{8}$"]
        assert all("hx1" not in r.model_dump_json() for r in outcome.reports)  # the shape, never a login

    def test_a_login_shape_honest_users_share_is_not_published(self) -> None:
        log = Log()
        log.honest_background()
        members = set(campaign(log))
        for event in log.events:  # the same shape for everyone: a site's default naming
            event["account_login"] = f"hx{10_000_000 + sum(map(ord, event['account_id']))}"
        outcome = detect(log.bytes())
        assert flagged(outcome) == members
        assert not [d for d in outcome.detections if d.kind == "account_pattern" and d.login_regex]
        assert outcome.reports[0].login_shapes[0].accounts_total > outcome.reports[0].login_shapes[0].accounts


class TestHardNegatives:
    def test_carrier_grade_nat_alone_is_never_a_cluster(self) -> None:
        log = Log()
        log.honest_background()
        log.accounts("cgnat", 120, ["100.64.0.1"], 21000, per_account=6, prompt=honest_prompt)
        assert detect(log.bytes()).reports == []

    def test_a_viral_template_across_the_population_is_never_a_cluster(self) -> None:
        log = Log()
        log.honest_background()
        for n in range(40):
            log.accounts(f"viral{n}", 1, [f"81.2.{n}.7"], 7100 + n, per_account=6, prompt=_viral)
        assert detect(log.bytes()).reports == []

    def test_a_viral_template_behind_cgnat_is_never_a_cluster(self) -> None:
        log = Log()
        log.honest_background()
        log.accounts("cgnat", 120, ["100.64.0.1"], 21000, per_account=6, prompt=honest_prompt)
        log.accounts("cgnatviral", 25, ["100.64.0.1"], 21000, per_account=6, prompt=_viral)
        for n in range(40):
            log.accounts(f"viral{n}", 1, [f"81.2.{n}.7"], 7100 + n, per_account=6, prompt=_viral)
        assert detect(log.bytes()).reports == []

    def test_corporate_egress_with_an_onboarding_wave_is_never_a_cluster(self) -> None:
        log = Log()
        log.honest_background()
        log.accounts(
            "corp",
            60,
            ["46.133.2.10"],
            31000,
            per_account=6,
            prompt=honest_prompt,
            signup_at=1800,
            domain="bigcorp.example",
        )
        assert detect(log.bytes()).reports == []

    def test_a_university_lab_is_never_a_cluster(self) -> None:
        log = Log()
        log.honest_background()
        lab = [f"128.32.5.{h}" for h in range(10, 14)]
        log.accounts(
            "lab", 30, lab, 41000, per_account=10, prompt=honest_prompt, signup_at=600, domain="uni.example.edu"
        )
        assert detect(log.bytes()).reports == []

    def test_power_users_on_cloud_addresses_are_never_a_cluster(self) -> None:
        log = Log()
        log.honest_background()
        log.accounts("power", 6, ["35.1.2.3", "35.1.2.4"], 16509, per_account=250, prompt=honest_prompt)
        assert detect(log.bytes()).reports == []

    def test_a_public_scaffold_never_counts_as_a_family(self) -> None:
        log = Log()
        log.honest_background()

        def scaffold(rng: object) -> str:
            import random

            assert isinstance(rng, random.Random)
            return REACT.replace("{tools}", "search").replace("{tool_names}", "search") + f" {rng.randint(0, 9)}"

        log.accounts("agents", 20, ["45.77.10.11", "45.77.10.12"], 20473, per_account=10, prompt=scaffold)
        assert detect(log.bytes()).reports == []

    def test_shared_infrastructure_and_a_wave_without_a_family_is_not_enough(self) -> None:
        log = Log()
        log.honest_background()
        log.accounts(
            "dc",
            20,
            ["45.77.10.11", "45.77.10.12"],
            20473,
            per_account=10,
            prompt=honest_prompt,
            signup_at=600,
            domain="mailbox-z.top",
        )
        assert detect(log.bytes()).reports == []


class TestLargeCampaigns:
    def test_a_campaign_that_is_most_of_the_population_is_still_found(self) -> None:
        # Lift is at most 1 / (the family's share of the population): the pool's purity decides instead.
        log = Log()
        log.honest_background(20)
        members = set(campaign(log, size=40))
        assert flagged(detect(log.bytes())) == members

    def test_two_campaigns_on_one_pool_with_different_templates_stay_two(self) -> None:
        from tests.detect.traffic import template_prompt

        rubric = (
            "You are an expert grader. Grade the response below against the rubric, scoring each criterion "
            "and justifying every score in detail. Show your reasoning. Response: {slot}"
        )
        log = Log()
        log.honest_background()
        first = set(campaign(log, "one"))
        pool = [f"45.77.10.{n}" for n in (11, 12, 13, 14)]
        second = set(log.accounts("two", 12, pool, 20473, per_account=10, prompt=lambda r: template_prompt(r, rubric)))
        assert sorted((set(r.account_ids) for r in detect(log.bytes()).reports), key=len) in (
            [first, second],
            [second, first],
        )

    def test_a_pool_rotating_through_an_ipv6_range_without_asns_publishes_the_range(self) -> None:
        log = Log()
        log.honest_background()
        members = [f"v6-{n:03d}" for n in range(12)]
        for name in members:
            for _ in range(10):
                address = f"2a00:1111:77:{log.rng.randrange(1, 65535):x}::{log.rng.randrange(1, 65535):x}"
                at = log.rng.uniform(0, log.hours * 3600)
                log.events.append(
                    {
                        "timestamp": (T0 + timedelta(seconds=at)).isoformat(),
                        "account_id": name,
                        "source_ip": address,
                        "prompt_text": template_prompt(log.rng),
                    }
                )
        outcome = detect(log.bytes())
        assert flagged(outcome) == set(members)
        ranges = {d.value for d in outcome.detections if d.kind == "proxy_ip"}
        assert ranges == {"2a00:1111:77::/48"}
