"""Prompt fingerprints for the ``x-llm-prompt`` SCO: normalisation ``llmsig-norm-v1`` and keyed MinHash LSH.

Everything a partner needs to reproduce a fingerprint bit for bit is pinned here and by the version name
``llmsig-minhash-v1`` (see ``reference_fingerprint`` in the tests for a ~30-line pure-Python version):

1. ``normalize_prompt``: NFKC, casefold, every Unicode punctuation (P*) and symbol (S*) character becomes a
   space, whitespace runs collapse to one space, strip. ``sha256`` is SHA-256 of its UTF-8 bytes.
2. Shingles: every run of 5 consecutive code points of the normalised text (the whole text if shorter).
3. Keyed shingle hash (the PRF): AES-128 of one 16-byte block per shingle, under
   ``K_s = SHA-256(b"llmsig-minhash-v1/shingle" + community_key)[:16]``. The block is the shingle's code
   points, each as 3 bytes little-endian, zero-padded to 15 bytes, then one byte holding the number of code
   points. ``x`` = the first 8 bytes of the ciphertext as an unsigned little-endian integer.
4. 128 hash functions ``h_i(x) = ((a_i * x + b_i) mod 2**64) >> 32`` (multiply-shift), with ``a_i`` (forced
   odd) and ``b_i`` the first and second 8 bytes (little-endian) of SHA-256(b"llmsig-minhash-v1/perm" +
   i as 2 bytes little-endian). ``minhash[i]`` = min over shingles of ``h_i(x)``.
5. 32 bands of 4 rows: band ``j`` = ``"%02d:" % j`` + hex of BLAKE2b-64 (digest_size 8) keyed with
   ``K_b = SHA-256(b"llmsig-minhash-v1/band" + community_key)`` over ``bytes([j]) + minhash[4j..4j+3]`` as
   4 little-endian uint32.

AES is used because one call encrypts a thousand shingles: the keyed hash is a real PRF and still
costs a few microseconds, where a per-shingle HMAC call costs ~0.5 µs per shingle in Python.
"""

import hashlib
import sys
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

NORMALIZATION = "llmsig-norm-v1"
FINGERPRINT_VERSION = "llmsig-minhash-v1"
NUM_PERM = 128
BANDS = 32
ROWS = 4
SHINGLE = 5
SHORT_PROMPT_BYTES = 50
"""Prompts shorter than this (normalised UTF-8 bytes) get exact-match indicators only
(docs/design.md#d3-prompt-signatures)."""


@dataclass(frozen=True, slots=True)
class PromptFingerprint:
    """The privacy-preserving signature of one prompt: never the text itself."""

    sha256: str
    normalized_length: int
    minhash: tuple[int, ...]
    lsh_bands: tuple[str, ...]
    key_id: str
    version: str = FINGERPRINT_VERSION

    @property
    def short(self) -> bool:
        return self.normalized_length < SHORT_PROMPT_BYTES


@lru_cache(maxsize=1)
def _punctuation_and_symbols() -> dict[int, int]:
    # Built on first use (about 0.1 s), never at import.
    space = ord(" ")
    return {cp: space for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] in "PS"}


def normalize_prompt(text: str) -> str:
    """``llmsig-norm-v1``: NFKC, casefold, punctuation and symbols to spaces, collapse whitespace, strip."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.translate(_punctuation_and_symbols()).split())


def prompt_sha256(text: str) -> str:
    """The exact-match signature: SHA-256 of the normalised prompt's UTF-8 bytes."""
    return hashlib.sha256(normalize_prompt(text).encode()).hexdigest()


@lru_cache(maxsize=1)
def _permutations() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    a, b = [], []
    for i in range(NUM_PERM):
        digest = hashlib.sha256(FINGERPRINT_VERSION.encode() + b"/perm" + i.to_bytes(2, "little")).digest()
        a.append(int.from_bytes(digest[0:8], "little") | 1)
        b.append(int.from_bytes(digest[8:16], "little"))
    return np.array(a, dtype=np.uint64), np.array(b, dtype=np.uint64)


@lru_cache(maxsize=8)
def _keys(key: bytes) -> tuple[bytes, bytes]:
    shingle_key = hashlib.sha256(FINGERPRINT_VERSION.encode() + b"/shingle" + key).digest()[:16]
    band_key = hashlib.sha256(FINGERPRINT_VERSION.encode() + b"/band" + key).digest()
    return shingle_key, band_key


_ROWS_PER_PASS = 1024
"""Shingles hashed per numpy pass: bounds each thread's scratch arrays to 1 MiB, whatever the prompt's length."""


@lru_cache(maxsize=1)
def _permutation_rows() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """``a`` and ``b`` repeated on ``_ROWS_PER_PASS`` rows (read-only, 1 MiB each).

    numpy multiplies a shingle column by a whole (rows x 128) array faster than by one broadcast row of 128, and
    adds two arrays of one shape faster than a broadcast row: about 5 µs of 30 per prompt.
    """
    rows = []
    for values in _permutations():
        tiled = np.tile(values, (_ROWS_PER_PASS, 1))
        tiled.setflags(write=False)
        rows.append(tiled)
    return rows[0], rows[1]


class _PerThread(threading.local):
    """Per-thread state reused from one prompt to the next, never shared with another thread.

    The scratch arrays spare an allocation per prompt and bound its memory: the (shingles x 128) products took
    1 KiB per character of a prompt, a gigabyte for a megabyte of text.
    """

    encryptors: dict[bytes, CipherContext]
    packed: npt.NDArray[np.uint8]
    blocks: npt.NDArray[np.uint8]
    products: npt.NDArray[np.uint64]

    def __init__(self) -> None:
        self.encryptors = {}
        self.packed = np.empty(3 * (_ROWS_PER_PASS + SHINGLE - 1), dtype=np.uint8)
        self.blocks = np.zeros((_ROWS_PER_PASS, 16), dtype=np.uint8)
        self.blocks[:, 15] = SHINGLE  # the length byte of every full shingle; bytes 0-14 are rewritten per pass
        self.products = np.empty((_ROWS_PER_PASS, NUM_PERM), dtype=np.uint64)


_per_thread = _PerThread()


def _encrypt_blocks(blocks: bytes | memoryview, *, key: bytes) -> bytes:
    """AES-128-ECB of whole blocks with the shingle key.

    Setting up an encryptor costs about as much as encrypting a whole prompt, so each thread keeps one per key:
    ECB over whole blocks carries no state from one call to the next, and a thread never shares its own.
    """
    encryptors = _per_thread.encryptors
    encryptor = encryptors.get(key)
    if encryptor is None:
        if len(encryptors) >= 8:
            encryptors.clear()
        shingle_key, _ = _keys(key)
        encryptor = Cipher(algorithms.AES(shingle_key), modes.ECB()).encryptor()  # noqa: S305 - a PRF, not secrecy
        encryptors[key] = encryptor
    ciphertext: bytes = encryptor.update(blocks)
    return ciphertext


@lru_cache(maxsize=8)
def _band_hashers(key: bytes) -> tuple["hashlib.blake2b", ...]:
    """One keyed BLAKE2b per band that has taken the key and the band's number byte, never updated again.

    Copying one is about 3x cheaper than keying a new one per band, and once the byte after the key block has
    arrived BLAKE2b has compressed the key block, so each band's copy compresses only its own final block.
    """
    _, band_key = _keys(key)
    hashers = []
    for j in range(BANDS):
        hasher = hashlib.blake2b(key=band_key, digest_size=8)
        hasher.update(bytes([j]))
        hashers.append(hasher)
    return tuple(hashers)


_BAND_PREFIXES = tuple(f"{j:02d}:" for j in range(BANDS))
_CODE_POINT = np.dtype("V3")  # a code point as 3 bytes little-endian: UTF-32-LE less its 4th byte, always 0
_WINDOW = np.dtype("V15")  # bytes 0-14 of a block: the 5 code points of a shingle


def _short_block(normalized: str) -> bytes:
    """The one block of a text shorter than a shingle (see the module docstring, step 3)."""
    packed = b"".join(ord(char).to_bytes(3, "little") for char in normalized)
    return packed.ljust(15, b"\0") + bytes([len(normalized)])


def minhash_of(normalized: str, *, key: bytes) -> npt.NDArray[np.uint64]:
    """The 128 keyed MinHash values of an already normalised prompt."""
    data = normalized.encode("utf-32-le")  # 4 bytes per code point; the 4th is always 0 (code points < 2**21)
    shingles = len(data) // 4 - SHINGLE + 1
    if shingles < 1:
        a, b = _permutations()
        x = np.frombuffer(_encrypt_blocks(_short_block(normalized), key=key), dtype="<u8")[:1]
        result: npt.NDArray[np.uint64] = (x * a + b) >> np.uint64(32)  # one shingle: its hashes are the minima
        return result
    a_rows, b_rows = _permutation_rows()
    state = _per_thread
    result = np.empty(NUM_PERM, dtype=np.uint64)
    for start in range(0, shingles, _ROWS_PER_PASS):
        rows = min(_ROWS_PER_PASS, shingles - start)
        # Two copies of whole items, each one numpy loop: the code points packed to 3 bytes, then each shingle's
        # 15 bytes (overlapping windows of the packed bytes) into bytes 0-14 of its block.
        count = rows + SHINGLE - 1
        code_points = np.ndarray((count,), dtype=_CODE_POINT, buffer=data, offset=4 * start, strides=(4,))
        np.ndarray((count,), dtype=_CODE_POINT, buffer=state.packed)[...] = code_points
        windows = np.ndarray((rows,), dtype=_WINDOW, buffer=state.packed, strides=(3,))
        np.ndarray((rows,), dtype=_WINDOW, buffer=state.blocks, strides=(16,))[...] = windows
        blocks = state.blocks[:rows]
        x = np.frombuffer(_encrypt_blocks(blocks.data, key=key), dtype="<u8")[::2]
        hashed = state.products[:rows]
        np.multiply(a_rows[:rows], x[:, None], out=hashed)
        np.add(hashed, b_rows[:rows], out=hashed)
        if start == 0:
            hashed.min(axis=0, out=result)
        else:
            np.minimum(result, hashed.min(axis=0), out=result)
    # ``>> 32`` is monotone, so shifting the 128 minima equals taking the minima of the shifted values.
    result >>= np.uint64(32)
    return result


def lsh_bands_of(minhash: npt.NDArray[np.uint64], *, key: bytes) -> tuple[str, ...]:
    """The 32 band strings of a MinHash signature (see the module docstring, step 5)."""
    rows = minhash.astype("<u4").tobytes()
    bands = []
    for j, hasher in enumerate(_band_hashers(key)):
        band = hasher.copy()
        band.update(rows[16 * j : 16 * j + 16])
        bands.append(_BAND_PREFIXES[j] + band.hexdigest())
    return tuple(bands)


def prompt_signatures(text: str, *, key: bytes) -> tuple[str, tuple[str, ...]]:
    """The SHA-256 and the 32 LSH bands of a prompt, as ``fingerprint_prompt`` computes them.

    For the matcher, which needs nothing else per event and so skips building the MinHash tuple.
    """
    normalized = normalize_prompt(text)
    minhash = minhash_of(normalized, key=key)
    return hashlib.sha256(normalized.encode()).hexdigest(), lsh_bands_of(minhash, key=key)


def fingerprint_prompt(text: str, *, key: bytes, key_id: str) -> PromptFingerprint:
    """Normalise a prompt and compute its exact and near-duplicate signatures under the community key."""
    normalized = normalize_prompt(text)
    data = normalized.encode()
    minhash = minhash_of(normalized, key=key)
    return PromptFingerprint(
        sha256=hashlib.sha256(data).hexdigest(),
        normalized_length=len(data),
        minhash=tuple(minhash.tolist()),
        lsh_bands=lsh_bands_of(minhash, key=key),
        key_id=key_id,
    )


def minhash_similarity(a: tuple[int, ...] | PromptFingerprint, b: tuple[int, ...] | PromptFingerprint) -> float:
    """Estimated Jaccard similarity of two prompts' shingle sets: the fraction of equal MinHash values."""
    left = a.minhash if isinstance(a, PromptFingerprint) else a
    right = b.minhash if isinstance(b, PromptFingerprint) else b
    if len(left) != len(right) or not left:
        raise ValueError("MinHash signatures must have the same, non-zero length")
    return sum(1 for x, y in zip(left, right, strict=True) if x == y) / len(left)
