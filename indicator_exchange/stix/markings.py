"""TLP markings: the TLP 2.0 marking-definition ids (docs/design.md#d6-tlp-20-markings) and their order.

Incoming TLP 1.0 ids (the ones predefined in STIX 2.1 §7.2.1.4) are understood when enforcing, mapped to
their TLP 2.0 equivalent (WHITE = CLEAR).
"""

from collections.abc import Iterable, Mapping
from enum import IntEnum


class Tlp(IntEnum):
    """TLP 2.0 levels, ordered from least to most restrictive."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        """The level as TLP 2.0 writes it: ``clear``, ``green``, ``amber``, ``amber+strict``, ``red``."""
        return self.name.lower().replace("_", "+")

    @property
    def marking_id(self) -> str:
        return TLP2_MARKING_IDS[self]

    @classmethod
    def parse(cls, text: str) -> "Tlp":
        """``amber+strict``, ``AMBER_STRICT``, ``TLP:AMBER+STRICT`` and ``white`` all parse."""
        cleaned = text.strip().upper().removeprefix("TLP:").replace("+", "_").replace("-", "_")
        if cleaned == "WHITE":
            return cls.CLEAR
        try:
            return cls[cleaned]
        except KeyError:
            raise ValueError(f"unknown TLP level {text!r}; expected one of {[t.label for t in cls]}") from None


TLP2_MARKING_IDS: dict[Tlp, str] = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

TLP1_MARKING_IDS: dict[Tlp, str] = {
    Tlp.CLEAR: "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    Tlp.GREEN: "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    Tlp.AMBER: "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    Tlp.RED: "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}

MARKING_TLP: dict[str, Tlp] = {
    **{marking: level for level, marking in TLP2_MARKING_IDS.items()},
    **{marking: level for level, marking in TLP1_MARKING_IDS.items()},
}

TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"


def tlp_of(obj: Mapping[str, object]) -> Tlp | None:
    """The most restrictive TLP level an object carries, object-level or granular; ``None`` if unmarked.

    Granular markings count too: serving an object serves every one of its properties.
    """
    object_refs = obj.get("object_marking_refs")
    granular = obj.get("granular_markings")
    refs: list[object] = object_refs if isinstance(object_refs, list) else []
    if isinstance(granular, list):
        refs = [*refs, *(g.get("marking_ref") for g in granular if isinstance(g, dict))]
    found = None
    for ref in refs:
        level = MARKING_TLP.get(ref) if isinstance(ref, str) else None
        if level is not None and (found is None or level > found):
            found = level
    return found


def filed_tlp(stix_type: str, stix_id: str, level: int | None) -> int | None:
    """The TLP level the store files an object under: its own marking (``None``: the collection's default),
    except the standard TLP marking-definitions themselves, filed under TLP:CLEAR. They are public by nature,
    and a reader must resolve the marking of every object it receives, whatever the collection's default."""
    if stix_type == "marking-definition" and stix_id in MARKING_TLP:
        return int(Tlp.CLEAR)
    return level


def tlp2_marking_definitions(levels: Iterable[Tlp] = tuple(Tlp)) -> list[dict[str, object]]:
    """The OASIS TLP 2.0 marking-definition objects, verbatim, to put beside objects that reference them."""
    return [
        {
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": TLP2_MARKING_IDS[level],
            "created": "2022-10-01T00:00:00.000Z",
            "name": f"TLP:{level.label.upper()}",
            "extensions": {TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level.label}},
        }
        for level in levels
    ]
