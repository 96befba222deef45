"""Score ``indicator-exchange detect`` on a labelled log from ``bench/gen_traffic.py``.

    python bench/gen_traffic.py -o traffic.jsonl --labels labels.json
    python bench/eval_detect.py traffic.jsonl labels.json [--window 24h]

Prints, per planted campaign, account-level precision and recall (a campaign's accounts in the clusters that
hold most of them); honest accounts flagged per honest group; and indicator precision: every published address
is checked against the log, and one that only honest accounts used counts as a false indicator (ranges: any
address of the log inside them that only honest accounts used). Targets (issue 18): precision >= 0.99 and
recall >= 0.90 per campaign, no hard-negative group flagged, 0 honest-only addresses published, no published
login shape that fits an honest account's login, and no published hashed identifier an honest account holds.
"""

import argparse
import ipaddress
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from indicator_exchange.detect.config import DetectConfig
from indicator_exchange.detect.pipeline import run
from indicator_exchange.settings import Settings
from indicator_exchange.stix.identifiers import hmac_identifier


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events")
    parser.add_argument("labels")
    parser.add_argument("--window", default="24h")
    args = parser.parse_args()
    labels: dict[str, str] = json.loads(Path(args.labels).read_text())["accounts"]
    started, cpu = time.perf_counter(), time.process_time()
    with open(args.events, "rb") as stream:
        outcome = run(stream, config=DetectConfig(window_seconds=_seconds(args.window)), settings=Settings())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    summary = outcome.clusters_file.summary
    print(
        f"{summary.events:,} events in {wall:.1f} s wall, {cpu:.1f} s CPU; {summary.clusters} clusters, "
        f"{summary.detections} detections, {summary.lines_rejected} lines rejected"
    )

    sizes = Counter(labels.values())
    flagged = {a: r.key for r in outcome.reports for a in r.account_ids}
    print("\ncampaign                 accounts  precision  recall")
    ok = True
    for group in sorted(g for g in sizes if g.startswith("campaign-")):
        members = {a for a, g in labels.items() if g == group}
        keys = Counter(flagged[a] for a in members if a in flagged)
        clusters = set(keys)
        held = [a for r in outcome.reports if r.key in clusters for a in r.account_ids]
        found = sum(1 for a in held if labels.get(a) == group)
        precision = found / len(held) if held else 0.0
        recall = found / len(members)
        ok &= precision >= 0.99 and recall >= 0.90
        print(f"{group:24s} {len(members):8d}  {precision:9.3f}  {recall:6.3f}")
    print("\nhonest group             accounts  flagged")
    for group in sorted(g for g in sizes if not g.startswith("campaign-")):
        hit = sum(1 for a, g in labels.items() if g == group and a in flagged)
        ok &= hit == 0
        print(f"{group:24s} {sizes[group]:8d}  {hit:7d}")

    # Who used each address, from the log itself.
    users: dict[str, set[str]] = defaultdict(set)
    logins: dict[str, str] = {}
    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    key = Settings().community_key_bytes
    with open(args.events, "rb") as stream:
        for line in stream:
            event = json.loads(line)
            if event.get("source_ip") and event.get("account_id"):
                users[event["source_ip"]].add(labels.get(event["account_id"], "honest"))
            if event.get("account_login") and event.get("account_id"):
                logins[event["account_id"]] = event["account_login"]
            for kind, value in (event.get("identifiers") or {}).items():
                holders[(kind, hmac_identifier(key, kind, value))].add(labels.get(event["account_id"], "honest"))
    honest_only = {ip for ip, groups in users.items() if not any(g.startswith("campaign-") for g in groups)}
    published = [d for d in outcome.detections if d.kind == "proxy_ip" and d.value is not None]
    bad = []
    for detection in published:
        assert detection.value is not None
        network = ipaddress.ip_network(detection.value, strict=False)
        inside = (
            [ip for ip in honest_only if ipaddress.ip_address(ip) in network]
            if network.num_addresses > 1
            else ([detection.value] if detection.value in honest_only else [])
        )
        if inside:
            bad.append((detection.value, len(inside)))
    ok &= not bad
    asns = sum(1 for d in outcome.detections if d.kind == "proxy_ip" and d.asn is not None)
    prompts = sum(1 for d in outcome.detections if d.kind == "prompt_signature")
    patterns = sum(1 for d in outcome.detections if d.kind == "account_pattern")
    print(
        f"\nindicators: {len(published)} addresses/ranges, {asns} ASNs, {prompts} prompt signatures, "
        f"{patterns} account patterns; honest-only addresses published: {len(bad)}"
    )
    for value, count in bad[:10]:
        print(f"  {value}: covers {count} honest-only address(es)")
    # A published login shape that fits an honest account's login would flag that account wherever it is matched.
    shapes = [d.login_regex for d in outcome.detections if d.kind == "account_pattern" and d.login_regex]
    honest_logins = [login for a, login in logins.items() if not labels.get(a, "honest").startswith("campaign-")]
    fitting = sum(1 for login in honest_logins if any(re.fullmatch(shape, login) for shape in shapes))
    ok &= fitting == 0
    print(
        f"login shapes published: {len(shapes)}; honest logins they fit: {fitting} of {len(honest_logins)}"
        + (" (the log carries no logins)" if not logins else "")
    )
    # A published identifier an honest account holds would flag that account wherever it is matched.
    hashed = [(i.type, i.hmac) for d in outcome.detections if d.kind == "account_pattern" for i in d.identifiers or ()]
    honest_held = sum(1 for h in hashed if any(not g.startswith("campaign-") for g in holders.get(h, ())))
    ok &= honest_held == 0
    print(
        f"hashed identifiers published: {len(hashed)}; held by an honest account: {honest_held}"
        + (" (the log carries no identifiers)" if not holders else "")
    )
    bands = defaultdict(lambda: [0, 0])
    for report in outcome.reports:
        share = Counter(labels.get(a, "honest").startswith("campaign-") for a in report.account_ids)
        band = f"{int(report.confidence * 10) / 10:.1f}"
        bands[band][0] += share[True]
        bands[band][1] += len(report.account_ids)
    print(
        "confidence band: precision "
        + ", ".join(f"{b}: {t and c / t:.3f} ({t})" for b, (c, t) in sorted(bands.items()))
    )
    print("\nall targets met" if ok else "\nTARGETS MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
