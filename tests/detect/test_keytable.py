"""The band-key table answers what a dict would, through growth, rebuilds, removals and probing past the end."""

import numpy as np

from indicator_exchange.detect.keytable import KeyTable


def _keys(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.unique(rng.integers(1, 1 << 62, count, dtype=np.int64) | 1)


class TestKeyTable:
    def test_it_answers_like_a_dict_through_rebuilds_and_removals(self) -> None:
        table = KeyTable()
        expected: dict[int, int] = {}
        keys = _keys(300_000, 1)
        for part, chunk in enumerate(np.array_split(keys, 10)):
            values, stops = table.probe(chunk)
            assert not values.any()
            table.put(chunk, np.full(len(chunk), part + 1, dtype=np.int64), stops)
            expected |= dict.fromkeys(chunk.tolist(), part + 1)
            if part % 3 == 2:  # drop every other key of this chunk; a wrong owner leaves a key alone
                table.remove(chunk[::2], np.full(len(chunk[::2]), part + 1, dtype=np.int64))
                table.remove(chunk[1::2], np.full(len(chunk[1::2]), part + 2, dtype=np.int64))
                for key in chunk[::2].tolist():
                    del expected[key]
        assert len(table) == len(expected)
        table._rebuild(0)  # the removal markers go
        probe = np.concatenate([keys, _keys(1000, 2), np.zeros(3, dtype=np.int64)])
        got = table.get(probe).tolist()
        assert got == [expected.get(key, 0) for key in probe.tolist()]

    def test_keys_homed_on_the_last_rows_wrap_to_the_first(self) -> None:
        table = KeyTable()
        size = len(table._rows)
        last = np.int64(((size - 1) << 1) | 1)  # home row: the last one
        keys = np.array([last + (size << 1) * i for i in range(5)], dtype=np.int64)
        table.put(keys, np.arange(1, 6, dtype=np.int64), table.probe(keys)[1])
        assert table.get(keys).tolist() == [1, 2, 3, 4, 5]
        table._rebuild(0)
        assert table.get(keys).tolist() == [1, 2, 3, 4, 5]
