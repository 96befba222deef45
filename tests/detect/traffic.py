"""Small crafted traffic logs for the detector tests: an honest background plus one scenario at a time."""

import io
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from indicator_exchange.detect.config import DetectConfig
from indicator_exchange.detect.pipeline import Outcome, run
from indicator_exchange.settings import Settings

T0 = datetime(2026, 11, 30, 6, tzinfo=UTC)
VOCAB = (  # noqa: SIM905 - a sentence of words reads better than a list
    "river budget kernel poem garden invoice theorem recipe server lecture novel cloud tensor market violin "
    "harbor ledger fossil orbit pixel canyon sonnet glacier vector lantern meadow cipher quartz tundra rocket "
    "magnet saddle walnut prairie beacon marble ember falcon tablet mosaic"
).split()
TEMPLATE = (
    "Solve the following problem step by step. Show every intermediate step of your reasoning, then put the "
    "final answer on its own line. Problem: {slot}"
)
VIRAL = "Act as a professional copywriter. Rewrite the following text so it sounds more confident: {slot}"
REACT = (
    "Answer the following questions as best you can. You have access to the following tools: {tools}. Use the "
    "following format: Question: the input question you must answer. Thought: you should always think about what "
    "to do. Action: the action to take, should be one of [{tool_names}]. Action Input: the input to the action. "
    "Observation: the result of the action. Thought: I now know the final answer. Final Answer: the final answer "
    "to the original input question."
)
SECRET_WORD = "zanzibarquokka"
"""In every prompt of the crafted logs: the grep tests look for it in every output."""


def words(rng: random.Random, low: int = 8, high: int = 30) -> str:
    return " ".join(rng.choices(VOCAB, k=rng.randint(low, high)))


def honest_prompt(rng: random.Random) -> str:
    return f"{rng.choice(['please', 'can you', 'help me'])} {words(rng)} {SECRET_WORD}{rng.randint(0, 10**9)}"


def template_prompt(rng: random.Random, template: str = TEMPLATE) -> str:
    return template.format(slot=f"{words(rng, 3, 6)} {SECRET_WORD} n={rng.randint(1, 99)}")


@dataclass
class Log:
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    events: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, set[str]] = field(default_factory=dict)
    hours: int = 6

    def event(self, group: str, account: str, ip: str, asn: int, *, at: float, **fields: Any) -> None:
        self.groups.setdefault(group, set()).add(account)
        stamp = (T0 + timedelta(seconds=at)).isoformat().replace("+00:00", "Z")
        self.events.append({"timestamp": stamp, "account_id": account, "source_ip": ip, "asn": asn} | fields)

    def accounts(
        self,
        group: str,
        count: int,
        ips: list[str],
        asn: int,
        *,
        per_account: int,
        prompt: Any,
        signup_at: float | None = None,
        domain: str = "mail.example",
    ) -> list[str]:
        names = [f"{group}-{n:04d}" for n in range(count)]
        for name in names:
            if signup_at is not None:
                at = signup_at + self.rng.uniform(0, 240)
                self.event(
                    group,
                    name,
                    self.rng.choice(ips),
                    asn,
                    at=at,
                    event_type="signup",
                    email=f"{name}.{SECRET_WORD}@{domain}",
                )
            start = signup_at + 300 if signup_at is not None else 0
            for _ in range(per_account):
                at = self.rng.uniform(start, self.hours * 3600)
                self.event(
                    group,
                    name,
                    self.rng.choice(ips),
                    asn,
                    at=at,
                    prompt_text=prompt(self.rng),
                    model="m",
                    output_tokens=100,
                )
        return names

    def honest_background(self, count: int = 150) -> None:
        for n in range(count):
            ip = f"198.{18 + n // 250}.{n % 250}.{1 + n % 200}"
            self.accounts(f"honest{n}", 1, [ip], 7000 + n % 40, per_account=6, prompt=honest_prompt)
            self.groups.setdefault("honest", set()).update(self.groups.pop(f"honest{n}"))

    def bytes(self) -> bytes:
        ordered = sorted(self.events, key=lambda e: str(e["timestamp"]))
        return b"".join(json.dumps(e).encode() + b"\n" for e in ordered)


def campaign(log: Log, name: str = "camp", size: int = 12, per_account: int = 10) -> list[str]:
    pool = [f"45.77.10.{n}" for n in (11, 12, 13, 14)]
    return log.accounts(name, size, pool, 20473, per_account=per_account, prompt=template_prompt)


def detect(data: bytes | Iterable[bytes], **overrides: Any) -> Outcome:
    raw = data if isinstance(data, bytes) else b"".join(data)
    return run(io.BytesIO(raw), config=DetectConfig(**overrides), settings=Settings())


def flagged(outcome: Outcome) -> set[str]:
    return {a for report in outcome.reports for a in report.account_ids}
