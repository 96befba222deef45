"""Prompt fingerprints per second on one core (normalise + SHA-256 + keyed MinHash + 32 LSH bands).

python bench/bench_fingerprint.py [--n 20000]
"""

import argparse
import json
import time
from pathlib import Path

from indicator_exchange.stix.fingerprint import fingerprint_prompt, prompt_signatures

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "prompt-corpus.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    corpus = json.loads(CORPUS.read_text())
    texts = [t for family in corpus["families"].values() for t in family.values()] + corpus["negatives"]
    prompts = [f"{texts[i % len(texts)]} #{i}" for i in range(args.n)]
    mean_len = sum(map(len, prompts)) / len(prompts)
    fingerprint_prompt("warm up the normalisation table", key=b"k", key_id="k")
    began = time.perf_counter()
    for text in prompts:
        fingerprint_prompt(text, key=b"bench-community-key", key_id="bench")
    elapsed = time.perf_counter() - began
    print(
        f"{args.n / elapsed:,.0f} prompt fingerprints/s on one core ({mean_len:.0f} characters on average, "
        f"{elapsed * 1e6 / args.n:.0f} µs each)"
    )
    began = time.perf_counter()
    for text in prompts:
        prompt_signatures(text, key=b"bench-community-key")
    elapsed = time.perf_counter() - began
    print(f"{args.n / elapsed:,.0f}/s for the SHA-256 and bands alone, as the matcher computes them per event")


if __name__ == "__main__":
    main()
