"""A numpy open-addressing table of band key -> family id, probed and filled a batch at a time.

Why not a dict: a window files millions of band keys (16 per prompt, most of them from one-prompt families),
and filing them one by one from the interpreter was the largest single cost of the detector. Here a batch's
keys are probed together in C. Key and value share a row, so a probe costs one cache miss; probing stops at
an empty row, which is where a missing key is then inserted (``probe`` answers it). A removed key leaves a
marker that probes walk past; the table is rebuilt without them when it fills.

Keys are never 0 or negative (``shingles`` keys are non-negative and odd); 0 is "no key".
"""

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
_MIN_CAPACITY = 1 << 16
_REMOVED = -1


class KeyTable:
    def __init__(self) -> None:
        self._rows: Ints = np.zeros((_MIN_CAPACITY, 2), dtype=np.int64)
        self._used = 0
        """Rows holding a key or a removal marker (what probing has to walk past)."""
        self._live = 0

    def __len__(self) -> int:
        return self._live

    @property
    def nbytes(self) -> int:
        return self._rows.nbytes

    def _home(self, keys: Ints) -> Ints:
        # Keys are already mixed hashes with a fixed low bit: their next bits are as good a row as any.
        return (keys >> 1) & (len(self._rows) - 1)

    def probe(self, keys: Ints) -> tuple[Ints, Ints]:
        """(value, row) of each key: its value and row if present, else 0 and the empty row probing reached
        (where ``put`` will try first); 0 and -1 for a key of 0."""
        mask = len(self._rows) - 1
        flat = self._rows.reshape(-1)
        # The first round over every key at once (most stop there), without index arrays; key 0 never stops.
        valid = keys > 0
        row = self._home(keys)
        held = flat[row << 1]
        hit = (held == keys) & valid
        values = np.where(hit, flat[(row << 1) | 1], 0)
        stop = (hit | (held == 0)) & valid
        where = np.where(stop, row, -1)
        pending = np.flatnonzero(valid & ~stop)
        row = (row[pending] + 1) & mask
        while pending.size:
            held = flat[row << 1]
            hit = held == keys[pending]
            values[pending[hit]] = flat[(row[hit] << 1) | 1]
            stop = hit | (held == 0)
            where[pending[stop]] = row[stop]
            pending = pending[~stop]
            row = (row[~stop] + 1) & mask
        return values, where

    def get(self, keys: Ints) -> Ints:
        """The value of each key (0 where absent or the key is 0)."""
        return self.probe(keys)[0]

    def put(self, keys: Ints, values: Ints, start: Ints | None = None) -> None:
        """Insert ``keys`` (distinct, positive, none of them in the table) with ``values``; ``start`` is where
        ``probe`` left each key, if nothing was put since."""
        if not len(keys):
            return
        if (self._used + len(keys)) * 2 > len(self._rows):
            self._rebuild(len(keys))
            start = None
        flat = self._rows.reshape(-1)
        mask = len(self._rows) - 1
        self._used += len(keys)
        self._live += len(keys)
        if start is None:
            pending = np.arange(len(keys))
            row = self._home(keys)
        else:
            # Each start row was empty when probed and nothing was put since: only the keys of this call compete
            # for it, so the first round writes without looking; the losers go on from the next row.
            claim = start << 1
            flat[claim] = keys
            won = flat[claim] == keys
            flat[claim[won] | 1] = values[won]
            pending = np.flatnonzero(~won)
            row = (start[pending] + 1) & mask
        while pending.size:
            empty = flat[row << 1] == 0
            # Several keys may reach one empty row in the same round: one write wins, the others see it taken.
            claim = row[empty] << 1
            flat[claim] = keys[pending[empty]]
            won = np.zeros(len(pending), dtype=bool)
            won[empty] = flat[claim] == keys[pending[empty]]
            flat[(row[won] << 1) | 1] = values[pending[won]]
            left = ~won
            row = np.where(empty, row, (row + 1) & mask)[left]  # a loser retries its row: now taken
            pending = pending[left]

    def remove(self, keys: Ints, owners: Ints) -> None:
        """Remove each key whose value is still its owner's (a key another family took is left alone)."""
        values, rows = self.probe(keys)
        gone = rows[(rows >= 0) & (values == owners) & (values != 0)]
        self._rows[gone] = (_REMOVED, 0)
        self._live -= len(gone)

    def _rebuild(self, adding: int) -> None:
        live = self._rows[:, 0] > 0
        keys, values = self._rows[live, 0], self._rows[live, 1]
        size = _MIN_CAPACITY
        while size < 4 * (len(keys) + adding):
            size <<= 1
        self._rows = np.zeros((size, 2), dtype=np.int64)
        self._used = self._live = 0
        if len(keys):
            # The table is empty: every home row is free, which is what ``put`` needs to know of a start row.
            self.put(keys, values, self._home(keys))
