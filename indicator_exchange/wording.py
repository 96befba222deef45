"""Counted nouns in what the commands print: "1 indicator", "2 indicators", "1,000 matches"."""

IRREGULAR = {"match": "matches", "retry": "retries", "entry": "entries", "batch": "batches"}


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, singular for exactly one."""
    word = noun if count == 1 else IRREGULAR.get(noun, noun + "s")
    return f"{count:,} {word}"
