"""The STIX 2.1 type catalogue: which spec-defined types are SDOs (§4), SROs (§5), SCOs (§6) and meta objects
(§7). A type outside ``SPEC_TYPES`` is a custom one."""

SDO_TYPES = frozenset(
    {
        "attack-pattern",
        "campaign",
        "course-of-action",
        "grouping",
        "identity",
        "incident",
        "indicator",
        "infrastructure",
        "intrusion-set",
        "location",
        "malware",
        "malware-analysis",
        "note",
        "observed-data",
        "opinion",
        "report",
        "threat-actor",
        "tool",
        "vulnerability",
    }
)
SRO_TYPES = frozenset({"relationship", "sighting"})
SCO_TYPES = frozenset(
    {
        "artifact",
        "autonomous-system",
        "directory",
        "domain-name",
        "email-addr",
        "email-message",
        "file",
        "ipv4-addr",
        "ipv6-addr",
        "mac-addr",
        "mutex",
        "network-traffic",
        "process",
        "software",
        "url",
        "user-account",
        "windows-registry-key",
        "x509-certificate",
    }
)
META_TYPES = frozenset({"marking-definition", "language-content", "extension-definition"})
SPEC_TYPES = SDO_TYPES | SRO_TYPES | SCO_TYPES | META_TYPES
