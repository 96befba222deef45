"""The fast fingerprint path (reused AES encryptors, copied BLAKE2b keys, shift after the minimum) still
agrees bit for bit with the pure-Python reference, on any text, key and thread."""

import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicator_exchange.stix.fingerprint import (
    _ROWS_PER_PASS,
    SHINGLE,
    fingerprint_prompt,
    normalize_prompt,
    prompt_signatures,
)
from tests.stix.test_fingerprint import reference_fingerprint

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
texts = st.text(st.characters(codec="utf-8"), max_size=300) | st.text("abc ,.!xyz", max_size=40)


class TestAgainstReference:
    @FAST
    @given(text=texts, key=st.binary(max_size=40))
    def test_any_text_and_key(self, text: str, key: bytes) -> None:
        fast = fingerprint_prompt(text, key=key, key_id="k")
        sha, minhash, bands = reference_fingerprint(text, key)
        assert (fast.sha256, list(fast.minhash), list(fast.lsh_bands)) == (sha, minhash, bands)
        assert all(type(v) is int for v in fast.minhash)
        assert prompt_signatures(text, key=key) == (fast.sha256, fast.lsh_bands)

    @pytest.mark.parametrize("extra", [-1, 0, 1, 2 * _ROWS_PER_PASS + 7])
    def test_prompts_around_and_beyond_one_pass(self, extra: int) -> None:
        # The shingles are hashed _ROWS_PER_PASS at a time; a prompt of that many shingles fills exactly one pass.
        length = _ROWS_PER_PASS + SHINGLE - 1 + extra
        text = "".join(random.Random(extra).choices("abcdefghijklmnopqrstuvwxyzé漢ж", k=length))
        fast = fingerprint_prompt(text, key=b"k", key_id="k")
        sha, minhash, bands = reference_fingerprint(text, b"k")
        assert len(normalize_prompt(text)) == length
        assert (fast.sha256, list(fast.minhash), list(fast.lsh_bands)) == (sha, minhash, bands)

    def test_alternating_keys_and_threads(self) -> None:
        text = "Solve step by step and show all reasoning inside thinking tags. Task 7: compute 7 times 14."
        expected = {key: reference_fingerprint(text, key)[2] for key in (b"one", b"two", b"three")}
        results: list[bool] = []

        def work() -> None:
            for _ in range(20):
                for key, bands in expected.items():
                    results.append(list(prompt_signatures(text, key=key)[1]) == bands)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 4 * 20 * 3
        assert all(results)
