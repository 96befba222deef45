"""Registration waves: signups per email domain, per ASN and per /24 (/48) range in short windows
(``wave_seconds``), against the same key's own mean rate over the log's window.

LinkedIn's registration-cluster work found fake accounts created in bursts that share a domain, a network
and a cadence. A slot is a wave when it holds at least ``wave_min_signups`` signups and ``wave_factor`` times
the key's mean per slot: a throwaway domain used only by one burst is a wave; a big free-mail domain is one
only when it spikes against its own baseline. A wave alone never reports a cluster (a class signing up from a
campus is a wave too); it links accounts only inside a prompt family.
"""

from collections import defaultdict
from dataclasses import dataclass

from indicator_exchange.detect.config import DetectConfig


@dataclass(frozen=True, slots=True)
class Wave:
    key: str
    start: float
    accounts: list[str]
    signups_on_key: int


class WaveIndex:
    def __init__(self, config: DetectConfig) -> None:
        self._slot = config.wave_seconds
        self.slots: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.totals: dict[str, int] = defaultdict(int)

    def add(self, account: str, ts: float, keys: list[str]) -> None:
        slot = int(ts // self._slot)
        for key in keys:
            self.slots[key][slot].append(account)
            self.totals[key] += 1

    def waves(self, *, window_seconds: float, config: DetectConfig) -> list[Wave]:
        slots_in_window = max(1.0, window_seconds / self._slot)
        found = []
        for key, slots in self.slots.items():
            mean = self.totals[key] / slots_in_window
            for slot, accounts in slots.items():
                if len(accounts) >= config.wave_min_signups and len(accounts) >= config.wave_factor * mean:
                    found.append(Wave(key, slot * self._slot, accounts, self.totals[key]))
        return found
