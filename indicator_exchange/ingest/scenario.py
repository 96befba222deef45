"""A realistic synthetic hydra-cluster scenario for the demo and the benchmarks.

Two clusters: each a burst of fraudulent accounts behind a residential proxy pool plus datacenter relays,
sending narrowly focused extraction prompts. Email domains come from `.example`. Addresses come from ordinary
ranges that no warninglist holds (46.91.113.0/24, 46.112.100.0/24, 46.133.2.0/24, 46.154.0.0/16, 2a00:1111::/32,
AS264496-264511; tests/lifecycle/test_warninglists.py checks): the documentation ranges are refused at ingest, as
every special-purpose range is (docs/lifecycle.md).
"""

import random
from datetime import UTC, datetime, timedelta

_TEMPLATES = {
    "cot-elicitation": (
        "You are a meticulous expert. Solve the task below. Think step by step and write your complete chain of "
        "reasoning inside <thinking> tags, then give only the final answer inside <answer> tags. Task: {task}"
    ),
    "rubric-grading": (
        "Act as a strict grader. Score the candidate response against the rubric on a scale of 1 to 10 for "
        "correctness, completeness and style, justify each score in two sentences, then output JSON with the "
        "keys score and rationale. Candidate response: {task}"
    ),
    "agentic-coding": (
        "You are an autonomous software engineer working in a repository. Plan the change, list the files you "
        "will edit, write the full patch as a unified diff, and explain how you verified it with tests. "
        "Issue: {task}"
    ),
    "tool-use": (
        "You have access to the tools search(query), fetch(url) and python(code). For the request below, "
        "emit each tool call as JSON on its own line, wait for its result, and finish with a final answer "
        "that cites the tool outputs. Request: {task}"
    ),
}
LOGIN_SHAPE = "^[a-z]+\\.[a-z]+[0-9]{4}$"
_TASKS = [
    "How many positive integers below 1000 are divisible by 7 but not by 11?",
    "A tank fills in 6 hours and drains in 9 hours; how long to fill it with both open?",
    "Prove that the sum of two odd numbers is even.",
    "Implement an LRU cache with O(1) get and put operations.",
    "Fix the off-by-one error in the pagination of the orders endpoint.",
    "Summarise the three most cited papers on protein folding from 2021.",
    "Convert 250 US dollars to euros at today's rate and show the calculation.",
    "Explain why the sky appears blue, citing the relevant physics.",
]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def hydra_scenario(*, seed: int = 7, now: datetime | None = None, proxies: int = 300) -> list[dict[str, object]]:
    """Detections as internal detectors would push them: proxy IPs, prompt signatures, account patterns."""
    rng = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    detections: list[dict[str, object]] = []
    pools = [f"46.133.2.{i}" for i in range(1, 255)] + [f"46.112.100.{i}" for i in range(1, 255)]
    pools += [f"46.91.113.{i}" for i in range(1, 255)]
    rng.shuffle(pools)
    for index, cluster in enumerate(("hydra-2026-11-A", "hydra-2026-11-B")):
        start = now - timedelta(days=9 - index * 3)
        common = {"cluster": cluster, "first_seen": _iso(start), "last_seen": _iso(now - timedelta(hours=index))}
        share = proxies // 2
        for address in pools[index * share : (index + 1) * share]:
            detections.append(
                {
                    "kind": "proxy_ip",
                    "detector": "proxy-graph",
                    "value": address,
                    "proxy_kind": rng.choice(["residential", "residential", "residential", "mobile"]),
                    "confidence": rng.randint(45, 80),
                    "tlp": "amber",
                    "accounts_linked": rng.randint(3, 400),
                    "requests": rng.randint(500, 90_000),
                    **common,
                }
            )
        for cidr in (f"46.154.{index * 4}.0/24", f"46.154.{index * 4 + 1}.0/24"):
            detections.append(
                {
                    "kind": "proxy_ip",
                    "detector": "asn-watch",
                    "value": cidr,
                    "proxy_kind": "datacenter",
                    "confidence": 85,
                    "tlp": "green",
                    **common,
                }
            )
        detections.append(
            {
                "kind": "proxy_ip",
                "detector": "asn-watch",
                "value": f"2a00:1111:{index + 10}::/48",
                "proxy_kind": "datacenter",
                "confidence": 70,
                "tlp": "green",
                **common,
            }
        )
        detections.append(
            {
                "kind": "proxy_ip",
                "detector": "asn-watch",
                "asn": 264496 + index,
                "proxy_kind": "residential",
                "confidence": 40,
                "tlp": "green",
                **common,
            }
        )
        for capability, template in _TEMPLATES.items():
            for task in rng.sample(_TASKS, 2):
                detections.append(
                    {
                        "kind": "prompt_signature",
                        "detector": "prompt-cluster",
                        "capability": capability,
                        "prompt_text": template.format(task=task),
                        "confidence": rng.randint(60, 90),
                        "tlp": "amber",
                        "requests": rng.randint(10_000, 2_000_000),
                        **common,
                    }
                )
        domains = [f"mailbox-{index}.example", f"tmpinbox-{index}.example"]
        detections.append(
            {
                "kind": "account_pattern",
                "detector": "signup-risk",
                "email_domains": domains,
                "confidence": 50,
                "tlp": "green",
                **common,
            }
        )
        detections.append(
            {
                "kind": "account_pattern",
                "detector": "signup-risk",
                "login_regex": LOGIN_SHAPE,
                "confidence": 30,
                "tlp": "amber",
                **common,
            }
        )
        detections.append(
            {
                "kind": "account_pattern",
                "detector": "signup-risk",
                "cadence": {"count": 20, "within_seconds": 3600, "email_domain": domains[0]},
                "confidence": 65,
                "tlp": "green",
                **common,
            }
        )
        identifiers = [{"type": "email", "value": f"user{rng.randint(1000, 9999)}@{domains[0]}"} for _ in range(5)]
        identifiers.append({"type": "payment-instrument", "value": f"card-fp-{rng.getrandbits(64):016x}"})
        detections.append(
            {
                "kind": "account_pattern",
                "detector": "payments-risk",
                "identifiers": identifiers,
                "confidence": 85,
                "tlp": "amber+strict",
                "accounts_linked": 24_000 // (index + 1),
                **common,
            }
        )
    # One of yesterday's residential exits turned out to be a university NAT: a false positive.
    detections.append(
        {
            "kind": "proxy_ip",
            "detector": "proxy-graph",
            "value": pools[0],
            "proxy_kind": "residential",
            "confidence": 50,
            "tlp": "amber",
            "false_positive": True,
            "cluster": "hydra-2026-11-A",
            "first_seen": _iso(now - timedelta(days=9)),
            "last_seen": _iso(now),
        }
    )
    return detections
