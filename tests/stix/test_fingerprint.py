"""Prompt fingerprints: the pinned algorithm, reproducible from a small pure-Python reference."""

import hashlib
import json
import unicodedata

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from indicator_exchange.stix.fingerprint import (
    FINGERPRINT_VERSION,
    fingerprint_prompt,
    minhash_similarity,
    normalize_prompt,
)
from tests.conftest import ROOT

KEY = b"test-community-key"
CORPUS = json.loads((ROOT / "tests" / "data" / "prompt-corpus.json").read_text())


def reference_fingerprint(text: str, key: bytes) -> tuple[str, list[int], list[str]]:
    """What a partner writes from the module docstring alone: no numpy, no project code."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    norm = " ".join("".join(" " if unicodedata.category(c)[0] in "PS" else c for c in folded).split())
    version = FINGERPRINT_VERSION.encode()
    aes = Cipher(algorithms.AES(hashlib.sha256(version + b"/shingle" + key).digest()[:16]), modes.ECB()).encryptor()
    band_key = hashlib.sha256(version + b"/band" + key).digest()
    width = min(5, len(norm))
    xs = []
    for i in range(max(1, len(norm) - width + 1)):
        shingle = norm[i : i + width]
        block = b"".join(ord(c).to_bytes(3, "little") for c in shingle).ljust(15, b"\0") + bytes([len(shingle)])
        xs.append(int.from_bytes(aes.update(block)[:8], "little"))
    minhash = []
    for i in range(128):
        d = hashlib.sha256(version + b"/perm" + i.to_bytes(2, "little")).digest()
        a, b = int.from_bytes(d[:8], "little") | 1, int.from_bytes(d[8:16], "little")
        minhash.append(min(((a * x + b) % 2**64) >> 32 for x in xs))
    bands = []
    for j in range(32):
        rows = b"".join(v.to_bytes(4, "little") for v in minhash[4 * j : 4 * j + 4])
        bands.append(f"{j:02d}:" + hashlib.blake2b(bytes([j]) + rows, key=band_key, digest_size=8).hexdigest())
    return hashlib.sha256(norm.encode()).hexdigest(), minhash, bands


class TestNormalisation:
    def test_case_punctuation_and_whitespace_are_folded(self) -> None:
        assert normalize_prompt("  Hello,\tWORLD!!  <b>ok</b> ") == "hello world b ok b"

    def test_nfkc_folds_compatibility_characters(self) -> None:
        assert normalize_prompt("\ufb01ne \uff34\uff45\uff58\uff54") == "fine text"


class TestReferenceImplementation:
    @pytest.mark.parametrize("family", sorted(CORPUS["families"]))
    def test_fast_and_reference_agree_bit_for_bit(self, family: str) -> None:
        text = CORPUS["families"][family]["base"]
        fast = fingerprint_prompt(text, key=KEY, key_id="k1")
        sha, minhash, bands = reference_fingerprint(text, KEY)
        assert (fast.sha256, list(fast.minhash), list(fast.lsh_bands)) == (sha, minhash, bands)

    @pytest.mark.parametrize("text", ["", "a", "abcd", "héllo wörld ✓ 漢字テキスト"])
    def test_short_and_unicode_inputs_agree(self, text: str) -> None:
        fast = fingerprint_prompt(text, key=KEY, key_id="k1")
        sha, minhash, bands = reference_fingerprint(text, KEY)
        assert (fast.sha256, list(fast.minhash), list(fast.lsh_bands)) == (sha, minhash, bands)


class TestSignatures:
    def test_the_key_changes_bands_but_not_the_sha(self) -> None:
        text = CORPUS["families"]["cot_math"]["base"]
        one, two = fingerprint_prompt(text, key=b"a", key_id="a"), fingerprint_prompt(text, key=b"b", key_id="b")
        assert one.sha256 == two.sha256
        assert not set(one.lsh_bands) & set(two.lsh_bands)

    def test_noise_variants_are_identical(self) -> None:
        for family in CORPUS["families"].values():
            base = fingerprint_prompt(family["base"], key=KEY, key_id="k")
            noise = fingerprint_prompt(family["noise"], key=KEY, key_id="k")
            assert base.sha256 == noise.sha256

    def test_slot_and_light_variants_share_a_band_and_negatives_do_not(self) -> None:
        negatives = [fingerprint_prompt(t, key=KEY, key_id="k") for t in CORPUS["negatives"]]
        for family in CORPUS["families"].values():
            base = fingerprint_prompt(family["base"], key=KEY, key_id="k")
            for variant in ("slot", "light"):
                other = fingerprint_prompt(family[variant], key=KEY, key_id="k")
                assert set(base.lsh_bands) & set(other.lsh_bands)
                assert minhash_similarity(base, other) >= 0.4
            assert all(not set(base.lsh_bands) & set(n.lsh_bands) for n in negatives)

    def test_short_prompts_are_flagged(self) -> None:
        assert fingerprint_prompt("Think step by step.", key=KEY, key_id="k").short
        assert not fingerprint_prompt(CORPUS["families"]["cot_math"]["base"], key=KEY, key_id="k").short
