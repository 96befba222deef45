"""In-memory near-duplicate keys for prompts: one-permutation MinHash over byte 6-grams, a batch at a time.

Why not ``llmsig-minhash-v1`` for every event: its keyed AES PRF and 128 permutations cost tens of
microseconds a prompt, the whole budget of an event at 50,000 events/s. These keys never leave the process, so
they need no key and no bit-for-bit spec: a batch of prompts is lower-cased, and punctuation and whitespace become
spaces (a cheap cousin of ``llmsig-norm-v1``), then every 6-byte shingle is hashed once with
a 64-bit mixer, and each prompt keeps the minimum per bin (one-permutation hashing, Li, Owen and Zhang 2012).
Bands of ``ROWS`` bins make the LSH keys: two prompts share a band with probability about J ** ROWS, so a
family of templated prompts (high J) shares keys while unrelated prompts almost never do. What is published
is computed by ``stix.fingerprint`` from the few texts a family keeps (``signals.families``).
"""

import numpy as np
import numpy.typing as npt

BINS = 48
ROWS = 3
BANDS = BINS // ROWS
SHINGLE = 6
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK = np.uint64((1 << (8 * SHINGLE)) - 1)
_BAND_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


def _table() -> npt.NDArray[np.uint8]:
    table = np.arange(256, dtype=np.uint8)
    for byte in range(128):
        char = chr(byte)
        if char.isupper():
            table[byte] = ord(char.lower())
        elif not char.isalnum() and byte != 0:
            table[byte] = 32  # ASCII punctuation, symbols and whitespace all become one space
    return table


_TABLE = _table()


def band_keys(texts: list[str]) -> list[list[int]]:
    """The ``BANDS`` LSH keys of each text (0 = a band with an empty bin, never a key)."""
    result: list[list[int]] = band_key_matrix(texts).tolist()
    return result


def band_key_matrix(texts: list[str]) -> npt.NDArray[np.int64]:
    """``band_keys`` as one (texts, BANDS) array: what the family index files a batch at a time."""
    if not texts:
        return np.zeros((0, BANDS), dtype=np.int64)
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    raw = b"\x00".join(encoded) + bytes(8)
    folded = _TABLE[np.frombuffer(raw, dtype=np.uint8)]
    count = int(lengths.sum()) + len(texts)
    # Every 8-byte window of the folded bytes, overlapping and unaligned, read as one little-endian integer:
    # its low SHINGLE bytes are the shingle. No copy until the multiply.
    windows = np.ndarray((count,), dtype="<u8", buffer=folded.data, strides=(1,))
    # In place from here on: at a few hundred thousand shingles a batch, temporaries cost as much as the math.
    values = windows & _MASK
    values *= _MIX1
    scratch = values >> np.uint64(29)
    values ^= scratch
    # The text a window starts in. The few windows that run over a separator into the next text add a shingle
    # or two of noise to a prompt of hundreds; checking them costs more than the rest of the batch.
    where = np.repeat(np.arange(0, len(texts) * BINS, BINS, dtype=np.int64), lengths + 1)[:count]
    np.right_shift(values, np.uint64(32), out=scratch)
    scratch *= np.uint64(BINS)
    scratch >>= np.uint64(32)
    where += scratch.view(np.int64)  # a bin number (< BINS): the same bits signed
    minima = np.full(len(texts) * BINS, _EMPTY, dtype=np.uint64)
    np.minimum.at(minima, where, values)
    grid = minima.reshape(len(texts), BANDS, ROWS)
    # Explicit over the ROWS (3) columns: a reduction along a short axis is slower than three whole-array ops.
    first, second, third = grid[:, :, 0], grid[:, :, 1], grid[:, :, 2]
    empty = (first == _EMPTY) | (second == _EMPTY) | (third == _EMPTY)
    keys = first * _BAND_MULT[0]
    keys += second * _BAND_MULT[1]
    keys += third * _BAND_MULT[2]
    keys ^= np.arange(BANDS, dtype=np.uint64) * _MIX2
    keys >>= np.uint64(1)  # fits a signed 64-bit int: cheap Python ints and dict keys
    keys |= np.uint64(1)  # never 0, which marks "no key"
    keys[empty] = 0
    result: npt.NDArray[np.int64] = keys.view(np.int64)
    return result
