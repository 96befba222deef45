"""Capability focus: how much of an account's traffic sits in a few counted prompt families, and which
capability a family's prompts go after.

Extraction accounts are narrow: most of what they send is one or two templates. An honest account that used a
viral template still sends everything else it needs, so its share stays low; a power user sends many
prompts, all different. The capability of a family (chain-of-thought elicitation, rubric grading, agentic
coding, tool use) comes from phrases in the texts it keeps in memory, and is published with its signatures.
"""

import re
from collections import Counter
from collections.abc import Iterable

from indicator_exchange.detect.signals.families import Family

_CAPABILITIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "cot-elicitation",
        re.compile(
            r"step[- ]by[- ]step|chain[- ]of[- ]thought|show (all |every |each )?(of )?(your |the )?"
            r"(intermediate )?(reasoning|work|steps)|think (carefully|aloud|out loud)|explain your reasoning",
            re.I,
        ),
    ),
    (
        "rubric-grading",
        re.compile(r"\brubric\b|\bgrade (this|the|each)\b|score (this|the|each) (answer|response)", re.I),
    ),
    ("agentic-coding", re.compile(r"\b(refactor|implement|write (a|the) (python|function|program|script))\b", re.I)),
    ("tool-use", re.compile(r"\b(tool call|function call|call the tool|available tools|json schema)\b", re.I)),
)


def capability(family: Family) -> str:
    """The capability most of a family's kept texts go after ('other' if none)."""
    votes: Counter[str] = Counter()
    for text, count in family.samples.items():
        for name, pattern in _CAPABILITIES:
            if pattern.search(text):
                votes[name] += count
                break
    if not votes:
        return "other"
    name, count = votes.most_common(1)[0]
    return name if count * 2 >= sum(family.samples.values()) else "other"


def focus(families: Iterable[Family], prompts: dict[str, int]) -> dict[str, float]:
    """Per account in ``families``: the share of its prompts that fall in them."""
    inside: Counter[str] = Counter()
    for family in families:
        inside.update(family.accounts)
    return {account: count / max(1, prompts.get(account, 0), count) for account, count in inside.items()}
