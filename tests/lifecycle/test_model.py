"""The score model against hand-computed values at fixed times, per kind; the lifecycle file."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from indicator_exchange.lifecycle import model
from indicator_exchange.lifecycle.kinds import kind_of
from indicator_exchange.settings import Settings

T0 = datetime(2026, 12, 1, tzinfo=UTC)

# (kind, elapsed, confidence, expected score) worked by hand from base·(1 - (t/τ)^(1/δ)).
HAND = [
    ("residential-ip", timedelta(hours=18), 80, 80 * (1 - 0.25**0.5)),  # τ 72 h, δ 2: 80·(1-0.5) = 40
    ("mobile-ip", timedelta(hours=6), 80, 40.0),  # τ 24 h, δ 2: (1/4)^(1/2) = 0.5
    ("datacenter-ip", timedelta(days=15), 60, 30.0),  # τ 30 d, δ 1: linear
    ("asn", timedelta(days=45), 100, 75.0),  # τ 90 d, δ 0.5: 1 - 0.5² = 0.75
    ("prompt-sha256", timedelta(days=90), 100, 100 * (1 - 0.5 ** (1 / 0.3))),
    ("prompt-lsh", timedelta(days=45), 80, 60.0),
    ("email-domain", timedelta(days=45), 40, 30.0),
    ("login-regex", timedelta(days=24), 50, 10.0),  # 1 - 0.8 = 0.2
    ("cadence", timedelta(days=9), 100, 99.0),  # 1 - 0.1² = 0.99
    ("hashed-identifier", timedelta(days=365), 90, 0.0),  # t = τ: expired
]


class TestScore:
    @pytest.mark.parametrize(("kind", "elapsed", "confidence", "expected"), HAND)
    def test_hand_computed(self, kind: model.Kind, elapsed: timedelta, confidence: int, expected: float) -> None:
        score = model.compute(
            kind=kind,
            confidence=confidence,
            valid_from=T0,
            last_tp=None,
            tp=0,
            fp=0,
            now=T0 + elapsed,
            decays=model.DEFAULTS,
        )
        assert score.score == pytest.approx(expected, abs=1e-9)

    def test_every_kind_has_a_hand_value(self) -> None:
        assert {k for k, *_ in HAND} == set(model.KINDS)

    def test_after_tau_is_zero_and_before_anchor_is_base(self) -> None:
        decay = model.DEFAULTS["asn"]
        assert model.decay_score(70, decay.tau + timedelta(seconds=1), decay) == 0
        assert model.decay_score(70, -timedelta(hours=1), decay) == 70

    def test_a_true_positive_resets_t(self) -> None:
        score = model.compute(
            kind="datacenter-ip",
            confidence=60,
            valid_from=T0,
            last_tp=T0 + timedelta(days=20),
            tp=1,
            fp=0,
            now=T0 + timedelta(days=20),
            decays=model.DEFAULTS,
        )
        assert score.elapsed_seconds == 0
        assert score.score == pytest.approx(60 * 2 / 3 * 2)  # base₀·(1+1)/(1+0+2)·2 = 80

    def test_feedback_base(self) -> None:
        assert model.feedback_base(50, 0, 0) == 50
        assert model.feedback_base(50, 0, 2) == pytest.approx(25)  # 50·1/4·2
        assert model.feedback_base(90, 5, 0) == 100  # clamped
        assert model.feedback_base(60, 1, 1) == 60

    def test_threshold_decides_enforcement(self) -> None:
        below = model.compute(
            kind="residential-ip",
            confidence=80,
            valid_from=T0,
            last_tp=None,
            tp=0,
            fp=0,
            now=T0 + timedelta(hours=11),  # 80·(1 - (11/72)^½) = 48.7
            decays=model.DEFAULTS,
        )
        above = model.compute(
            kind="residential-ip",
            confidence=80,
            valid_from=T0,
            last_tp=None,
            tp=0,
            fp=0,
            now=T0 + timedelta(hours=10),  # 51.5
            decays=model.DEFAULTS,
        )
        assert below.score < 50 <= above.score
        assert not below.enforced
        assert above.enforced


class TestKinds:
    @pytest.mark.parametrize(
        ("indicator", "kind"),
        [
            ({"pattern": "[ipv4-addr:value = '45.83.12.7']", "labels": ["residential-proxy"]}, "residential-ip"),
            ({"pattern": "[ipv4-addr:value = '45.83.12.7']", "labels": ["mobile-proxy"]}, "mobile-ip"),
            ({"pattern": "[ipv4-addr:value = '45.83.12.7']", "labels": ["datacenter-proxy"]}, "datacenter-ip"),
            (
                {"pattern": "[ipv4-addr:value ISSUBSET '45.83.12.0/24']", "labels": ["residential-proxy"]},
                "datacenter-ip",
            ),
            ({"pattern": "[autonomous-system:number = 9009]"}, "asn"),
            ({"pattern": "[x-llm-prompt:hashes.'SHA-256' = 'ab']"}, "prompt-sha256"),
            ({"pattern": "[x-llm-prompt:lsh_bands[*] IN ('a', 'b')]"}, "prompt-lsh"),
            ({"pattern": "[email-addr:value MATCHES '@(x\\\\.com)$']"}, "email-domain"),
            (
                {"pattern": "[user-account:account_login MATCHES '^a' AND user-account:account_type = 'x']"},
                "login-regex",
            ),
            ({"pattern": "[email-addr:value MATCHES '@x$'] REPEATS 5 TIMES WITHIN 60 SECONDS"}, "cadence"),
            (
                {"pattern": "[x-hashed-identifier:identifier_type = 'email' AND x-hashed-identifier:value = 'a']"},
                "hashed-identifier",
            ),
        ],
    )
    def test_kind_of(self, indicator: dict[str, object], kind: str) -> None:
        assert kind_of(indicator) == kind


class TestLifecycleFile:
    def test_overrides(self, tmp_path: Path) -> None:
        path = tmp_path / "lifecycle.json"
        path.write_text(json.dumps({"kinds": {"residential-ip": {"tau": "48h", "threshold": 40}, "asn": {"delta": 1}}}))
        decays = model.load_decays(str(path))
        assert decays["residential-ip"] == model.Decay(timedelta(hours=48), 2.0, 40.0)
        assert decays["asn"].delta == 1.0
        assert decays["cadence"] == model.DEFAULTS["cadence"]

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("{not json", "not a readable JSON file"),
            ('{"kinds": {"home-ip": {}}}', "unknown kind 'home-ip'"),
            ('{"kinds": {"asn": {"tau": "forever"}}}', "kinds.asn.tau must be a duration"),
            ('{"kinds": {"asn": {"delta": 0}}}', "kinds.asn.delta must be a number"),
            ('{"kinds": {"asn": {"threshold": 101}}}', "kinds.asn.threshold must be a number"),
            ('{"kinds": {"asn": {"lifetime": 1}}}', "may set only tau, delta and threshold"),
        ],
    )
    def test_a_bad_file_stops_the_settings(self, tmp_path: Path, content: str, message: str) -> None:
        path = tmp_path / "lifecycle.json"
        path.write_text(content)
        with pytest.raises(ValidationError, match=message):
            Settings(lifecycle_file=str(path))

    def test_a_missing_file_stops_the_settings(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="not a readable JSON file"):
            Settings(lifecycle_file=str(tmp_path / "absent.json"))


class TestAnchor:
    def test_valid_until_less_tau_is_the_last_observation(self) -> None:
        # Our detections publish valid_until = last_seen + τ: first seen 2 days ago, last seen 6 h ago.
        score = model.compute(
            kind="residential-ip",
            confidence=80,
            valid_from=T0 - timedelta(days=2),
            last_tp=None,
            valid_until=T0 - timedelta(hours=6) + timedelta(hours=72),
            tp=0,
            fp=0,
            now=T0,
            decays=model.DEFAULTS,
        )
        assert score.elapsed_seconds == 6 * 3600
        assert score.score == pytest.approx(80 * (1 - (6 / 72) ** 0.5))

    def test_a_far_valid_until_does_not_move_the_anchor_past_now(self) -> None:
        score = model.compute(
            kind="datacenter-ip",
            confidence=70,
            valid_from=T0 - timedelta(days=5),
            last_tp=None,
            valid_until=T0 + timedelta(days=365),
            tp=0,
            fp=0,
            now=T0,
            decays=model.DEFAULTS,
        )
        assert score.elapsed_seconds == 0
        assert score.score == 70
