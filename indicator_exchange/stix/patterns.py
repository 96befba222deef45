"""STIX patterning helpers: literals, the normaliser the generated patterns are held to, observables to match."""

import json
import uuid
from functools import lru_cache

from indicator_exchange.stix.extensions import EXT_LLM_PROMPT
from indicator_exchange.stix.fingerprint import NORMALIZATION, PromptFingerprint
from indicator_exchange.stix.shapes import PromptObservable


def stix_string(text: str) -> str:
    """A STIX pattern string literal: quotes and backslashes escaped (STIX 2.1 §9.3)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@lru_cache(maxsize=4096)
def canonical_pattern(pattern: str) -> str:
    """The stix2 pattern-equivalence normal form of ``pattern`` (raises on an invalid pattern)."""
    from stix2 import pattern_visitor
    from stix2.equivalence.pattern import _get_pattern_normalizer

    ast = pattern_visitor.create_pattern_object(pattern, version="2.1")
    normalised, _ = _get_pattern_normalizer().transform(ast)
    return str(normalised)


def domain_regex(domain: str) -> str:
    """A domain name as a regex: domains hold only letters, digits, dots and hyphens; only dots need escaping."""
    return domain.strip().casefold().replace(".", "\\.")


def prompt_observable(fingerprint: PromptFingerprint) -> PromptObservable:
    """The ``x-llm-prompt`` SCO a partner builds from its own traffic (no raw text), for matching with
    stix2-matcher. The id is UUIDv5 in the SCO namespace over the id-contributing properties."""
    contributing = {"hashes": {"SHA-256": fingerprint.sha256}, "normalization": NORMALIZATION}
    sco_namespace = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
    canonical = json.dumps(contributing, sort_keys=True, separators=(",", ":"))
    return {
        "type": "x-llm-prompt",
        "spec_version": "2.1",
        "id": f"x-llm-prompt--{uuid.uuid5(sco_namespace, canonical)}",
        "normalization": NORMALIZATION,
        "hashes": {"SHA-256": fingerprint.sha256},
        "normalized_length": fingerprint.normalized_length,
        "fingerprint_key_id": fingerprint.key_id,
        "lsh_bands": list(fingerprint.lsh_bands),
        "extensions": {EXT_LLM_PROMPT: {"extension_type": "new-sco"}},
    }
