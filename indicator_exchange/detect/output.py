"""What the detector writes: detections (``schemas/detection.schema.json``) and the clusters file
(``schemas/detect-clusters.schema.json``, generated from the models below).

Raw prompt text never reaches either: a family is written as the ``llmsig-minhash-v1`` fingerprint of the
texts it kept in memory (SHA-256 of the normalised text, keyed LSH bands), and accounts are written only as
the ``account_id`` the log gave them. Addresses are published only where the cluster holds at least
``indicator_min_share`` of the accounts seen on them; a range or an ASN only where it holds
``range_min_share`` and every address seen under it carried the cluster. Identifiers are only ever HMACs under
the community key (hashed by the reader): a shared one is published as an ``account_pattern`` ``hmac``.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from indicator_exchange.detect.clusters import Cluster
from indicator_exchange.detect.config import DetectConfig
from indicator_exchange.detect.engine import Counts
from indicator_exchange.ingest.convert import SCAFFOLD_SIMILARITY, scaffold_texts
from indicator_exchange.ingest.schemas import (
    AccountPatternDetection,
    HashedIdentifier,
    PromptSignatureDetection,
    ProxyIpDetection,
    SignupCadence,
)
from indicator_exchange.stix.fingerprint import PromptFingerprint, fingerprint_prompt, minhash_similarity

DETECTOR = "indicator-exchange-detect"
_MIN_ADDRESSES_PER_RANGE = 3
AnyDetection = ProxyIpDetection | PromptSignatureDetection | AccountPatternDetection


class Infrastructure(BaseModel):
    value: str = Field(description="Address, CIDR range or 'AS<number>'.")
    accounts: int = Field(description="Cluster accounts seen on it.")
    accounts_total: int = Field(description="All accounts seen on it in the same windows.")
    published: bool = Field(description="Whether a proxy_ip detection was written for it.")


class PromptFamily(BaseModel):
    """A family by its fingerprints: never the text."""

    prompt_sha256: list[str] = Field(description="llmsig-norm-v1 SHA-256 of the family's most sent prompts.")
    lsh_bands: list[str] = Field(description="llmsig-minhash-v1 bands of its most sent prompt.")
    capability: str
    accounts: int
    prompts: int


class ClusterReport(BaseModel):
    key: str = Field(description="Cluster key, carried by every detection of the cluster as 'cluster'.")
    account_ids: list[str]
    accounts_linked: int
    requests: int
    source_ips: list[Infrastructure]
    cidrs: list[Infrastructure]
    asns: list[Infrastructure]
    email_domains: list[Infrastructure]
    login_shapes: list[Infrastructure] = Field(
        default_factory=list, description="Shapes (regexes) of the members' account_login; never a login."
    )
    identifiers: list[Infrastructure] = Field(
        default_factory=list,
        description="Identifiers the members share, as '<type>:<HMAC>' under the community key; never a raw value.",
    )
    prompt_families: list[PromptFamily]
    signals: dict[str, float] = Field(description="Score 0-1 of each signal: family, focus, infra, wave.")
    first_seen: datetime
    last_seen: datetime
    confidence: float = Field(ge=0, le=1)


class Summary(BaseModel):
    events: int
    requests: int
    signups: int
    prompts: int
    lines_rejected: int
    events_without_account: int
    events_other_shard: int
    windows: int
    clusters: int
    accounts_flagged: int
    detections: int


class ClustersFile(BaseModel):
    """``indicator-exchange detect --clusters FILE``: every cluster found, and a summary of the run."""

    window_seconds: int
    clusters: list[ClusterReport]
    summary: Summary


def _time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Publisher:
    """Turns clusters into detections and reports, fingerprinting kept texts once each."""

    def __init__(self, config: DetectConfig, *, key: bytes, key_id: str, scaffold_file: str | None) -> None:
        self._config = config
        self._key = key
        self._key_id = key_id
        self._scaffolds = [
            fingerprint_prompt(t, key=key, key_id=key_id) for t in scaffold_texts(scaffold_file).values()
        ]
        self._fingerprints: dict[str, PromptFingerprint] = {}

    def _fingerprint(self, text: str) -> PromptFingerprint:
        found = self._fingerprints.get(text)
        if found is None:
            found = self._fingerprints[text] = fingerprint_prompt(text, key=self._key, key_id=self._key_id)
        return found

    def _public_scaffold(self, fingerprint: PromptFingerprint) -> bool:
        return any(
            s.sha256 == fingerprint.sha256 or minhash_similarity(s, fingerprint) >= SCAFFOLD_SIMILARITY
            for s in self._scaffolds
        )

    def _infrastructure(
        self, cluster: Cluster
    ) -> tuple[list[Infrastructure], list[Infrastructure], list[Infrastructure]]:
        config = self._config
        groups: tuple[list[Infrastructure], list[Infrastructure], list[Infrastructure]] = ([], [], [])
        ordered = sorted(cluster.keys.items(), key=lambda kv: (-kv[1][0], kv[0]))
        published_under: Counter[str] = Counter()
        used_under: Counter[str] = Counter()
        for key, (inside, total, _) in ordered:
            if key.startswith("ip:"):
                used_under.update(cluster.parents.get(key, ()))
                if inside >= 2 and inside / max(1, total) >= config.indicator_min_share:
                    published_under.update(cluster.parents.get(key, ()))
        for key, (inside, total, untouched) in ordered:
            kind, _, value = key.partition(":")
            if inside < 2:
                continue
            share = inside / max(1, total)
            if kind == "ip":
                published = share >= config.indicator_min_share
                groups[0].append(
                    Infrastructure(value=value, accounts=inside, accounts_total=total, published=published)
                )
            else:
                # A range or an ASN only with no address seen in it that the cluster never used, and three
                # published addresses in it (or, with no other account on it, three addresses it used): one
                # residential exit never makes its neighbours' /24 an indicator, a pool rotating through a /48 does.
                published = (
                    inside >= 3
                    and share >= config.range_min_share
                    and untouched == 0
                    and (published_under[key] if inside < total else used_under[key]) >= _MIN_ADDRESSES_PER_RANGE
                )
                shown = f"AS{value}" if kind == "asn" else value
                item = Infrastructure(value=shown, accounts=inside, accounts_total=total, published=published)
                groups[1 if kind == "net" else 2].append(item)
        return groups

    def _domains(self, cluster: Cluster) -> list[Infrastructure]:
        items = []
        for domain, (inside, total) in sorted(cluster.domains.items(), key=lambda kv: (-kv[1][0], kv[0])):
            published = inside >= 3 and inside / max(1, total) >= self._config.range_min_share
            items.append(Infrastructure(value=domain, accounts=inside, accounts_total=total, published=published))
        return items

    def _shapes(self, cluster: Cluster) -> list[Infrastructure]:
        """A shape is published where the cluster holds ``range_min_share`` of the accounts with it and it
        describes at least ``agree_min_share`` of the cluster: a farm's naming scheme, not a common habit."""
        config, members = self._config, len(cluster.members)
        items = []
        for regex, (inside, total) in sorted(cluster.shapes.items(), key=lambda kv: (-kv[1][0], kv[0])):
            published = (
                inside >= 3
                and inside / max(1, total) >= config.range_min_share
                and inside >= config.agree_min_share * members
            )
            items.append(Infrastructure(value=regex, accounts=inside, accounts_total=total, published=published))
        return items

    def _identifiers(self, cluster: Cluster) -> list[Infrastructure]:
        """An identifier is published where ``identifier_min_accounts`` members share it and the cluster holds
        ``range_min_share`` of the accounts that have it: a farm's phone or card, not a family's."""
        config = self._config
        items = []
        for ident, (inside, total) in sorted(cluster.identifiers.items(), key=lambda kv: (-kv[1][0], kv[0])):
            if inside < 2:
                continue
            published = inside >= config.identifier_min_accounts and inside / max(1, total) >= config.range_min_share
            items.append(Infrastructure(value=ident, accounts=inside, accounts_total=total, published=published))
        return items

    def _families(self, cluster: Cluster) -> list[PromptFamily]:
        families = []
        for use in sorted(cluster.families, key=lambda f: -f.prompts):
            top = [text for text, _ in use.texts.most_common(self._config.max_prompt_signatures)]
            prints = [self._fingerprint(t) for t in top]
            if not prints or any(self._public_scaffold(p) for p in prints[:1]):
                continue
            families.append(
                PromptFamily(
                    prompt_sha256=list(dict.fromkeys(p.sha256 for p in prints)),
                    lsh_bands=list(prints[0].lsh_bands),
                    capability=use.capability,
                    accounts=use.accounts,
                    prompts=use.prompts,
                )
            )
        return families

    def report(self, cluster: Cluster) -> ClusterReport:
        ips, cidrs, asns = self._infrastructure(cluster)
        return ClusterReport(
            key=cluster.key,
            account_ids=sorted(cluster.members),
            accounts_linked=len(cluster.members),
            requests=cluster.requests,
            source_ips=ips,
            cidrs=cidrs,
            asns=asns,
            email_domains=self._domains(cluster),
            login_shapes=self._shapes(cluster),
            identifiers=self._identifiers(cluster),
            prompt_families=self._families(cluster),
            signals={k: v for k, v in cluster.signals.items() if k != "confidence"},
            first_seen=_time(cluster.first_seen),
            last_seen=_time(cluster.last_seen),
            confidence=cluster.signals["confidence"],
        )

    def detections(self, cluster: Cluster, report: ClusterReport) -> Iterator[AnyDetection]:
        """The detections of one cluster, each already validated by the ingest models."""
        common = {
            "detector": DETECTOR,
            "first_seen": report.first_seen,
            "last_seen": report.last_seen,
            "confidence": round(100 * report.confidence),
            "cluster": report.key,
        }
        for item in report.source_ips + report.cidrs:
            if item.published:
                yield ProxyIpDetection(kind="proxy_ip", value=item.value, accounts_linked=item.accounts, **common)
        for item in report.asns:
            if item.published:
                yield ProxyIpDetection(
                    kind="proxy_ip", asn=int(item.value[2:]), accounts_linked=item.accounts, **common
                )
        budget = self._config.max_prompt_signatures
        for family in report.prompt_families:
            for sha in family.prompt_sha256[: max(0, budget)]:
                yield PromptSignatureDetection(
                    kind="prompt_signature",
                    prompt_sha256=sha,
                    capability=family.capability,
                    accounts_linked=family.accounts,
                    requests=family.prompts,
                    **common,
                )
            budget -= len(family.prompt_sha256)
        domains = [d.value for d in report.email_domains if d.published]
        if domains:
            yield AccountPatternDetection(
                kind="account_pattern", email_domains=domains, accounts_linked=len(report.account_ids), **common
            )
        for item in report.login_shapes:
            if item.published:
                yield AccountPatternDetection(
                    kind="account_pattern", login_regex=item.value, accounts_linked=item.accounts, **common
                )
        for item in report.identifiers:
            if item.published:
                kind, _, digest = item.value.partition(":")
                identifier = HashedIdentifier.model_validate({"type": kind, "hmac": digest})
                yield AccountPatternDetection(
                    kind="account_pattern", identifiers=[identifier], accounts_linked=item.accounts, **common
                )
        waves: Counter[tuple[str, int]] = Counter()
        for key, count, seconds in cluster.waves:
            kind, _, value = key.partition(":")
            if kind == "domain" and value in domains:
                waves[(value, seconds)] = max(waves[(value, seconds)], count)
        for (domain, seconds), count in sorted(waves.items()):
            cadence = SignupCadence(count=count, within_seconds=seconds, email_domain=domain)
            yield AccountPatternDetection(
                kind="account_pattern", cadence=cadence, accounts_linked=len(report.account_ids), **common
            )


def summary(counts: Counts, reports: list[ClusterReport], detections: int) -> Summary:
    return Summary(
        events=counts.events,
        requests=counts.requests,
        signups=counts.signups,
        prompts=counts.prompts,
        lines_rejected=counts.lines_rejected,
        events_without_account=counts.without_account,
        events_other_shard=counts.other_shard,
        windows=counts.windows,
        clusters=len(reports),
        accounts_flagged=sum(len(r.account_ids) for r in reports),
        detections=detections,
    )
