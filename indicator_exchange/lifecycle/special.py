"""IANA special-purpose address and AS-number registries, as warninglists (docs/lifecycle.md#warninglists).

Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its updates) and the
special-purpose AS number registry (RFC 5398 documentation, RFC 6996 private use, RFC 7300 last ASNs).
"""

SPECIAL_NETWORKS: dict[str, tuple[str, ...]] = {
    "iana-private-use (RFC 1918, RFC 4193)": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
    "iana-shared-address-space (RFC 6598 carrier-grade NAT)": ("100.64.0.0/10",),
    "iana-loopback (RFC 1122, RFC 4291)": ("127.0.0.0/8", "::1/128"),
    "iana-link-local (RFC 3927, RFC 4291)": ("169.254.0.0/16", "fe80::/10"),
    "iana-documentation (RFC 5737, RFC 3849, RFC 9637)": (
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
        "3fff::/20",
    ),
    "iana-multicast (RFC 5771, RFC 4291)": ("224.0.0.0/4", "ff00::/8"),
    "iana-benchmarking (RFC 2544, RFC 5180)": ("198.18.0.0/15", "2001:2::/48"),
    "iana-reserved (RFC 6890 and updates)": (
        "0.0.0.0/8",
        "192.0.0.0/24",
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.88.99.0/24",
        "192.175.48.0/24",
        "240.0.0.0/4",
        "::/128",
        "::ffff:0:0/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2002::/16",
        "5f00::/16",
    ),
}

SPECIAL_ASNS: dict[str, tuple[tuple[int, int], ...]] = {
    "iana-documentation-asn (RFC 5398)": ((64496, 64511), (65536, 65551)),
    "iana-private-use-asn (RFC 6996)": ((64512, 65534), (4_200_000_000, 4_294_967_294)),
    "iana-reserved-asn (RFC 7300, RFC 6793)": (
        (0, 0),
        (23456, 23456),
        (65535, 65535),
        (65552, 131071),
        (4_294_967_295, 4_294_967_295),
    ),
}
