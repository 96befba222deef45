"""Labelled synthetic API traffic for the behavioural detector (``indicator-exchange detect``).

    python bench/gen_traffic.py -o traffic.jsonl --labels labels.json [--accounts 20000] [--days 2] [--seed 7]

Honest population: residential accounts over many ASNs with diverse prompts and a diurnal cadence, plus the hard
negatives — carrier-grade NAT and corporate egress addresses each shared by hundreds of honest accounts (the
corporate one with an onboarding signup burst), a university lab behind one /24 (signing up together, sharing
topics and a course template), power users sending hundreds of diverse prompts a day from cloud addresses, and
a viral public prompt template that one honest account in six uses now and then.

Planted campaigns, each a different style: a datacenter proxy pool, a residential proxy pool whose exits are
also honest households, signup waves on throwaway domains from a VPN range, a blended campaign that mixes
honest-looking prompts into its extraction traffic, and a small thin one. Their prompts are templates with
slot variation and light paraphrase (synonyms, punctuation, casing). Logins (``account_login``): honest users
pick their own (a name, a separator, a year; three in ten send none), three of the farms name accounts from a
generator of their own shape, the blended and the small campaign send none; ``--no-logins`` leaves them out.
Identifiers (``identifiers``, raw as a lab logs them): the signup-wave farm reuses ten phones and five cards over
its accounts; a hundred honest families of four share a phone each, and one honest account in twenty has a
phone of its own; ``--no-identifiers`` leaves them out (the log before them, byte for byte).
Lines come out in time order.

Account ids are random, so nothing in an id gives its label away; ``--labels`` maps each id to its group.
"""

import argparse
import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

START = datetime(2026, 11, 30, tzinfo=UTC)
WORDS = (  # noqa: SIM905 - a paragraph of words reads better than a list of 300 strings
    "time year people way day man thing woman life child world school state family student group country problem "
    "hand part place case week company system program question work government number night point home water room "
    "mother area money story fact month lot right study book eye job word business issue side kind head house "
    "service friend father power hour game line end member law car city community name president team minute idea "
    "kid body information back parent face others level office door health person art war history party result "
    "change morning reason research girl guy moment air teacher force education foot boy age policy process music "
    "market sense nation plan college interest death experience effect use class control care field development "
    "role effort rate heart drug show leader light voice wife police mind price report decision son view "
    "relationship town road arm difference value building action model season society tax director position "
    "player record paper space ground form event official matter center couple site project activity star table "
    "need court oil situation cost industry figure street image phone data picture practice piece land product "
    "doctor wall patient worker news test movie north love support technology step baby computer type attention "
    "film tree source organization hair window evidence population truth song energy garden recipe travel budget "
    "essay email letter poem summary translation spreadsheet database server network kernel compiler function "
    "variable recursion algorithm graph vector matrix integral derivative theorem proof chemistry biology physics"
).split()
OPENERS = ["can you", "please", "i need to", "how do i", "what is the best way to", "help me", "could you", "why does"]
VERBS = ["explain", "write", "fix", "summarize", "compare", "plan", "describe", "improve", "translate", "draft", "list"]
VIRAL = "Act as a professional {role}. Rewrite the following text so it sounds more {tone} and persuasive: {text}"
LAB_TEMPLATE = "For our {course} lab report, explain how {topic} relates to {other} using the notation from lecture."
FREE_MAIL = ["gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com"]


def _words(rng: random.Random, low: int, high: int, vocab: list[str] = WORDS) -> str:
    return " ".join(rng.choices(vocab, k=rng.randint(low, high)))


def honest_prompt(rng: random.Random, vocab: list[str] = WORDS) -> str:
    return f"{rng.choice(OPENERS)} {rng.choice(VERBS)} {_words(rng, 6, 40, vocab)}{rng.choice(['?', '.', ''])}"


def viral_prompt(rng: random.Random) -> str:
    role = rng.choice(["copywriter", "editor", "marketer", "lawyer", "recruiter"])
    return VIRAL.format(role=role, tone=rng.choice(["formal", "friendly", "confident"]), text=_words(rng, 8, 30))


def _paraphrase(rng: random.Random, text: str, synonyms: dict[str, list[str]]) -> str:
    for word, options in synonyms.items():
        if word in text and rng.random() < 0.5:
            text = text.replace(word, rng.choice(options), 1)
    if rng.random() < 0.3:
        text = text.replace(",", "").replace(".", ";")
    if rng.random() < 0.2:
        text = text.lower()
    return text


SYNONYMS = {
    "Solve": ["Work through", "Answer"],
    "step by step": ["step-by-step", "one step at a time"],
    "Show": ["Write out", "Give"],
    "reasoning": ["thinking", "chain of thought"],
    "final answer": ["answer", "result"],
    "Grade": ["Score", "Evaluate"],
    "rubric": ["grading rubric", "marking scheme"],
    "Implement": ["Write", "Code"],
}
TEMPLATES = {
    "cot": "Solve the following problem step by step. Show every intermediate step of your reasoning, then put the "
    "final answer on its own line. Problem: {slot}",
    "rubric": "You are an expert grader. Grade the response below against the rubric, scoring each criterion from 1 "
    "to 10 and justifying every score in detail before the total. Rubric: clarity, correctness, depth. "
    "Response: {slot}",
    "coding": "Implement the following function in Python with full type hints and docstrings, then explain your "
    "reasoning line by line and list the edge cases you considered. Task: {slot}",
    "tools": "You can call these tools: search(query), calculator(expr), browse(url). Think aloud about which tool "
    "call to make, write each tool call as JSON, and show your reasoning after every observation. Goal: {slot}",
    "cot2": "Think carefully and explain your reasoning in numbered steps before answering. Question: {slot} "
    "Make sure to show all of your work.",
}


def campaign_prompt(rng: random.Random, template: str) -> str:
    slot = _words(rng, 4, 14)
    if rng.random() < 0.5:
        slot += f" with n = {rng.randint(2, 999)}"
    return _paraphrase(rng, TEMPLATES[template].format(slot=slot), SYNONYMS)


@dataclass
class Account:
    id: str
    group: str
    ips: list[str]
    asn: int | list[int]
    per_day: float
    prompt: Callable[[random.Random], str]
    domain: str
    signup_at: float | None = None
    rotate: bool = False
    pool_asns: list[int] = field(default_factory=list)
    login: str | None = None
    identifiers: dict[str, str] | None = None


class Net:
    """Hands out addresses in distinct /24s, each with an ASN."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[tuple[int, int, int]] = set()

    def block(self, first: int) -> tuple[int, int, int]:
        while True:
            block = (first, self._rng.randint(0, 255), self._rng.randint(0, 255))
            if block not in self._used:
                self._used.add(block)
                return block

    def address(self, block: tuple[int, int, int], host: int | None = None) -> str:
        return ".".join(map(str, (*block, host if host is not None else self._rng.randint(1, 254))))


def build(rng: random.Random, accounts: int, days: int) -> tuple[list[Account], dict[str, object]]:
    net = Net(rng)
    seconds = days * 86_400
    people: list[Account] = []
    ids: set[str] = set()

    def new_id() -> str:
        while True:
            value = "".join(rng.choices(string.ascii_lowercase + string.digits, k=12))
            if value not in ids:
                ids.add(value)
                return value

    def signup(probability: float, at: float | None = None) -> float | None:
        if at is not None:
            return at
        return rng.uniform(0, seconds * 0.9) if rng.random() < probability else None

    resi_asns = list(range(7000, 7200))
    corp_domains = [f"corp{n}.example" for n in range(400)]
    households: list[tuple[str, int]] = []
    for _ in range(accounts):
        asn = rng.choice(resi_asns)
        if households and rng.random() < 0.1:
            ip, asn = rng.choice(households)  # a second person in the same household
        else:
            ip = net.address(net.block(rng.choice([24, 50, 68, 71, 73, 98, 174])))
            households.append((ip, asn))
        viral = rng.random() < 1 / 6
        prompt = (lambda r: viral_prompt(r) if r.random() < 0.2 else honest_prompt(r)) if viral else honest_prompt
        domain = rng.choice(FREE_MAIL + corp_domains[: rng.randint(1, 400)])
        group = "honest-viral" if viral else "honest"
        people.append(Account(new_id(), group, [ip], asn, rng.uniform(1, 20), prompt, domain, signup(0.3)))
    for n in range(3):  # carrier-grade NAT: one address, hundreds of honest phones
        ip = net.address(net.block(100), 1 + n)
        for _ in range(300):
            viral = rng.random() < 1 / 6
            prompt = (lambda r: viral_prompt(r) if r.random() < 0.3 else honest_prompt(r)) if viral else honest_prompt
            people.append(
                Account(
                    new_id(),
                    "honest-cgnat",
                    [ip],
                    21_000 + n,
                    rng.uniform(1, 15),
                    prompt,
                    rng.choice(FREE_MAIL),
                    signup(0.3),
                )
            )
    for n in range(2):  # corporate egress with an onboarding burst of signups
        ip = net.address(net.block(192))
        burst = rng.uniform(0, seconds * 0.8)
        for i in range(200):
            people.append(
                Account(
                    new_id(),
                    "honest-corporate",
                    [ip],
                    31_000 + n,
                    rng.uniform(2, 30),
                    honest_prompt,
                    f"bigcorp{n}.example",
                    signup(1.0, burst + rng.uniform(0, 300) if i < 40 else None),
                )
            )
    lab = net.block(128)
    lab_vocab = rng.sample(WORDS, 80)
    term = rng.uniform(0, seconds * 0.5)

    def lab_prompt(r: random.Random) -> str:
        if r.random() < 0.15:
            return LAB_TEMPLATE.format(course="CS101", topic=r.choice(lab_vocab), other=r.choice(lab_vocab))
        return honest_prompt(r, lab_vocab)

    for _ in range(40):  # a university lab: one /24, one domain, one morning of signups, shared topics
        ips = [net.address(lab, h) for h in rng.sample(range(10, 20), 3)]
        people.append(
            Account(
                new_id(),
                "honest-university",
                ips,
                41_000,
                rng.uniform(5, 40),
                lab_prompt,
                "uni.example.edu",
                signup(1.0, term + rng.uniform(0, 900)),
            )
        )
    cloud = [net.block(35) for _ in range(3)]
    for _ in range(60):  # power users: hundreds of diverse prompts a day, from cloud machines
        block = rng.choice(cloud)
        people.append(
            Account(
                new_id(),
                "honest-power",
                [net.address(block)],
                16_509,
                rng.uniform(200, 800),
                honest_prompt,
                rng.choice(FREE_MAIL),
                signup(0.2),
            )
        )

    def campaign(
        name: str,
        size: int,
        ips: list[str],
        asns: list[int],
        per_day: tuple[float, float],
        template: str,
        *,
        blend: float = 0.0,
        domains: list[str] = FREE_MAIL,
        waves: int = 0,
    ) -> None:
        def prompt(r: random.Random) -> str:
            return honest_prompt(r) if r.random() < blend else campaign_prompt(r, template)

        starts = [rng.uniform(0, seconds * 0.5) for _ in range(waves)]
        for i in range(size):
            at = starts[i % waves] + rng.uniform(0, 300) if waves else signup(0.5)
            people.append(
                Account(
                    new_id(),
                    f"campaign-{name}",
                    ips,
                    asns,
                    rng.uniform(*per_day),
                    prompt,
                    rng.choice(domains),
                    at,
                    rotate=True,
                )
            )

    dc = [net.block(45), net.block(45)]
    campaign("dc-pool", 300, [net.address(rng.choice(dc)) for _ in range(20)], [24_940], (30, 60), "cot")
    exits = [ip for ip, _ in rng.sample(households, 300)] + [net.address(net.block(76)) for _ in range(100)]
    campaign("resi-pool", 600, exits, resi_asns, (10, 30), "rubric")
    vpn = net.block(185)
    throwaway = [f"mailbox{n}.top" for n in range(3)]
    campaign(
        "signup-wave", 150, [net.address(vpn) for _ in range(8)], [9009], (8, 20), "coding", domains=throwaway, waves=3
    )
    campaign("blended", 80, [ip for ip, _ in rng.sample(households, 60)], resi_asns, (20, 40), "tools", blend=0.5)
    small = net.block(51)
    campaign("small-thin", 25, [net.address(small) for _ in range(6)], [16_276], (5, 8), "cot2")
    labels: dict[str, object] = {"accounts": {a.id: a.group for a in people}}
    return people, labels


FARM_LOGINS: dict[str, Callable[[random.Random, int], str]] = {
    # Account farms name accounts from a generator: one shape per campaign (the blended and the small one
    # send no login, as a careful operator would).
    "campaign-dc-pool": lambda r, i: f"user{r.randint(10_000_000, 99_999_999)}",
    "campaign-resi-pool": lambda r, i: f"{r.choice(string.ascii_lowercase)}x{r.randint(10**9, 10**10 - 1)}",
    "campaign-signup-wave": lambda r, i: f"{''.join(r.choices(string.ascii_lowercase, k=6))}-{i:05d}",
}


def honest_login(rng: random.Random) -> str | None:
    """What people pick: a name, perhaps a separator and another name, perhaps a few digits (a year)."""
    if rng.random() < 0.3:
        return None
    name = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10)))
    if rng.random() < 0.3:
        name += rng.choice("._") + "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8)))
    if rng.random() < 0.6:
        name += str(rng.choice([rng.randint(1, 99), rng.randint(1950, 2010)]))
    return name


def assign_logins(rng: random.Random, people: list[Account]) -> None:
    """Logins from a generator of their own, so the rest of the log is the same with or without them."""
    for index, a in enumerate(people):
        farm = FARM_LOGINS.get(a.group)
        if farm is not None:
            a.login = farm(rng, index)
        elif not a.group.startswith("campaign-"):
            a.login = honest_login(rng)


def _phone(rng: random.Random) -> str:
    return f"+1 {rng.randint(200, 999)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}"


def assign_identifiers(rng: random.Random, people: list[Account]) -> None:
    """From a generator of their own, so the rest of the log is the same with or without them."""
    farm = [a for a in people if a.group == "campaign-signup-wave"]
    phones = [_phone(rng) for _ in range(10)]
    cards = [f"card-fp-{rng.getrandbits(48):012x}" for _ in range(5)]
    for i, a in enumerate(farm):
        a.identifiers = {"phone": phones[i % len(phones)], "payment-instrument": cards[i % len(cards)]}
    honest = [a for a in people if a.group == "honest"]
    picked = rng.sample(honest, 400 + len(honest) // 20)
    for n in range(100):  # families: four accounts, one phone
        phone = _phone(rng)
        for a in picked[4 * n : 4 * n + 4]:
            a.identifiers = {"phone": phone}
    for a in picked[400:]:
        a.identifiers = {"phone": _phone(rng)}


def events(rng: random.Random, people: list[Account], days: int) -> Iterator[dict[str, object]]:
    diurnal = np.array(
        [
            0.3,
            0.2,
            0.15,
            0.15,
            0.2,
            0.35,
            0.6,
            0.9,
            1.2,
            1.4,
            1.5,
            1.5,
            1.4,
            1.4,
            1.5,
            1.5,
            1.4,
            1.3,
            1.2,
            1.1,
            1.0,
            0.9,
            0.7,
            0.5,
        ]
    )
    rates = np.array([a.per_day for a in people]) / 24
    nprng = np.random.default_rng(rng.randint(0, 2**32))
    for hour in range(days * 24):
        base = hour * 3600
        batch: list[tuple[float, dict[str, object]]] = []
        for a in people:
            if a.signup_at is not None and base <= a.signup_at < base + 3600:
                ip = rng.choice(a.ips)
                asn = rng.choice(a.asn) if isinstance(a.asn, list) else a.asn
                batch.append(
                    (
                        a.signup_at,
                        {
                            "event_type": "signup",
                            "account_id": a.id,
                            "source_ip": ip,
                            "asn": asn,
                            "email": f"{a.id[:6]}@{a.domain}",
                        }
                        | ({"account_login": a.login} if a.login else {})
                        | ({"identifiers": a.identifiers} if a.identifiers else {}),
                    )
                )
        counts = nprng.poisson(rates * diurnal[hour % 24])
        for index in np.flatnonzero(counts):
            a = people[int(index)]
            if a.signup_at is not None and a.signup_at > base + 3600:
                continue  # not yet signed up
            for _ in range(int(counts[index])):
                ip = rng.choice(a.ips)
                asn = rng.choice(a.asn) if isinstance(a.asn, list) else a.asn
                event = {
                    "event_type": "request",
                    "account_id": a.id,
                    "source_ip": ip,
                    "asn": asn,
                    "prompt_text": a.prompt(rng),
                    "model": "m-large",
                    "output_tokens": rng.randint(50, 2000),
                }
                if a.login:
                    event["account_login"] = a.login
                if a.identifiers:
                    event["identifiers"] = a.identifiers
                batch.append((base + rng.uniform(0, 3600), event))
        batch.sort(key=lambda item: item[0])
        for ts, event in batch:
            stamp = (START + timedelta(seconds=ts)).isoformat().replace("+00:00", "Z")
            yield {"timestamp": stamp} | event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True, help="JSONL traffic log to write ('-' = stdout).")
    parser.add_argument("--labels", required=True, help="JSON file of account id -> group.")
    parser.add_argument("--accounts", type=int, default=20_000, help="Honest residential accounts.")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-logins", action="store_true", help="Events without account_login (the log before it).")
    parser.add_argument("--no-identifiers", action="store_true", help="Events without identifiers (the log before).")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    people, labels = build(rng, args.accounts, args.days)
    if not args.no_logins:
        assign_logins(random.Random(args.seed * 1_000_003 + 1), people)
    if not args.no_identifiers:
        assign_identifiers(random.Random(args.seed * 1_000_003 + 2), people)
    Path(args.labels).write_text(json.dumps(labels))
    out = open(args.output, "w") if args.output != "-" else None  # noqa: SIM115
    write = out.write if out else print
    lines = 0
    for event in events(rng, people, args.days):
        write(json.dumps(event) + ("\n" if out else ""))
        lines += 1
    if out:
        out.close()
    print(f"{lines:,} events, {len(people):,} accounts", file=__import__("sys").stderr)


if __name__ == "__main__":
    main()
