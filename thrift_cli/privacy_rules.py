"""Which of Presidio's spans to replace, and the names spaCy's small pipeline misses.

Presidio's recognizers are tuned for records, not for technical answers: spaCy calls
`Linux`, `Euler`, `Email` and `App Router` people, and the IP recognizer takes
`127.0.0.1`, `10.0.0.0/16` and `255.255.192.0` for someone's address. The rules here keep
what is no one's (private and documentation addresses, networks, public resolvers,
broadcast MACs, anything that is not shaped like a person's name) and find the names a
form, a letter or an email address beside them announces. Each rule is a plain function of
the text, in microseconds; tests/test_privacy.py and scripts/bench_pii.py hold them to
account.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

# The score of a name these rules find (spaCy's own are 0.85): above the 0.5 default, so a
# `min_score` over 0.7 keeps to what spaCy and Presidio's patterns find alone.
NAME_RULE_SCORE = 0.7

# Addresses everybody writes in configs and tutorials: public DNS resolvers.
_WELL_KNOWN_IPS = frozenset({"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9", "208.67.222.222"})
_NO_MACS = frozenset({"ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"})
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")

# A bare run of digits is a timestamp, a count or an id far more often than a phone or NHS
# number: libphonenumber accepts most 10-digit runs, and one in eleven passes the NHS
# checksum (1720659338, a Unix time). Bare, they need a word that says what they are, just
# before them; written with spaces, dashes or a + they speak for themselves.
_SAYS_SO = {
    "PHONE_NUMBER": re.compile(
        r"(?i)\b(?:phone|call|tel|telephone|mobile|cell|fax|whatsapp|sms|dial|contact)"
    ),
    "UK_NHS": re.compile(r"(?i)\bnhs\b"),
}
_SAYS_SO_WITHIN = 40  # characters before the number
# Digits that count up or down, or repeat one digit, are an example (AWS's 123456789012,
# 000000000), not anyone's number.
_NUMBER_TYPES = frozenset(
    {"PHONE_NUMBER", "US_SSN", "US_ITIN", "US_PASSPORT", "US_DRIVER_LICENSE", "US_BANK_NUMBER", "UK_NHS"}
)
_RUNS = "0123456789" * 3


def keep(text: str, entity_type: str, start: int, end: int) -> bool:
    """Whether a span Presidio found is one to replace."""
    span = text[start:end]
    if entity_type in _NUMBER_TYPES and _example_digits(span):
        return False
    says_so = _SAYS_SO.get(entity_type)
    bare = span.strip("()").isdigit()  # "(1717430400": libphonenumber takes a paren along
    if says_so and bare and not says_so.search(text, max(0, start - _SAYS_SO_WITHIN), start):
        return False
    if entity_type == "PERSON":
        return name_shaped(span, titled=_TITLE_BEFORE.search(text, 0, start) is not None)
    if entity_type == "IP_ADDRESS":
        return personal_ip(span) and not _a_version(text, start, end)
    if entity_type == "PHONE_NUMBER":
        return not _DOTTED_QUAD.fullmatch(span)  # 255.255.192.0 is a netmask
    if entity_type == "MAC_ADDRESS":
        return span.lower().replace("-", ":") not in _NO_MACS
    return True


def _example_digits(span: str) -> bool:
    digits = "".join(c for c in span if c.isdigit())
    return len(digits) >= 6 and (len(set(digits)) == 1 or digits in _RUNS or digits[::-1] in _RUNS)


def name_end(text: str, entity_type: str, start: int, end: int) -> int:
    """A name ends before its possessive: "<PERSON>'s card", not "<PERSON> card"."""
    if entity_type == "PERSON" and text[start:end].endswith(("'s", "’s")):
        return end - 2
    return end


# Four-part versions read as IPv4: Windows 10.0.19041.1, a kernel's 5.15.153.1-microsoft.
_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|ver|build|kernel|release|firmware)[ \t:=]*\(?\Z")
_VERSION_AFTER = re.compile(r"[-+~][^\W\d_]")


def _a_version(text: str, start: int, end: int) -> bool:
    return bool(_VERSION_AFTER.match(text, end) or _VERSION_BEFORE.search(text, max(0, start - 20), start))


def personal_ip(span: str) -> bool:
    """A host's public address: not loopback, private, link-local, documentation or reserved
    (`ipaddress`'s is_global), not a network written in CIDR, not a public DNS resolver."""
    address, _, prefix = span.partition("/")
    try:
        ip = ipaddress.ip_address(address)
        if prefix and ipaddress.ip_network(span, strict=False).network_address == ip:
            return False  # 10.0.64.0/18, 0.0.0.0/0: a network, not a host
    except ValueError:
        return False
    return ip.is_global and address not in _WELL_KNOWN_IPS


# A name as people write one: two to four capitalised words of letters (with ' - . inside,
# as in O'Connor, Al-Sayed, Jean-Pierre), or one word after a title. A lone word is too
# often a product (`Linux`, `Netplan`) or a theorem (`Euler`) to take for a person.
_WORD = r"[^\W\d_]+(?:['’.-][^\W\d_]+)*"
_NAME_WORD = re.compile(_WORD)
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame)\.?"
_TITLE_BEFORE = re.compile(r"\b" + _TITLE + r"[ \t]+\Z")

# Words that make a run of capitalised words a product, a heading or a CI step, not a
# person: software nouns, step verbs, company suffixes. None is a common surname (Park,
# King, Baker, Cook and Young are names too, and stay out of this list).
_NOT_NAMES = frozenset(
    """about account accounts action actions add admin agent api apis app application apps
    architecture assistant auth background backup bank beta boot bot build builder bundle
    cache card center chart check checkout class cli client clients cloud cluster code
    commit component components config configure connect console contact container
    controller core corp create dashboard data database debug default dependencies
    deploy deployment design desktop dev developer device devices docs document
    documentation download driver edition editor email engine enterprise error errors
    event events example explorer express extension feature features file files fix
    format framework function functions gateway generator get guide hello help hub inc
    index install installer interface issue item key keys kit lab labs language layer
    library lint linux llc load local log login logs ltd manager map merge model models
    module monitor name names network networks new node note notebook notes number object
    online open overview package page pages panel phone pipeline platform plugin policy
    pool portal pro process product profile project publish pull push query queue quick
    readme record registry release remote report repository request reset resource
    response restart review robot route router rule run runner runtime sandbox schema
    script sdk search security server servers service services session set settings
    setup shell sign site source spec stack start status step stop storage store stories
    studio success summary support system systems table task team template terminal test
    tests theme thanks token tokens tool toolkit tools update upgrade upload usage use user
    users version view viewer web welcome window windows word workflow workspace world
    zero info sales billing noreply desk office careers jobs press marketing""".split()  # noqa: SIM905
)


# Lower-case particles between the capitalised words of a name: Willem de Vries, Ana dos
# Santos, Ludwig van der Berg, Omar bin Said.
_PARTICLES = frozenset("de van von der den da das do dos di del della la le du bin ibn al el ter ten".split())  # noqa: SIM905


def name_shaped(span: str, titled: bool = False) -> bool:
    words = span.split(" ")
    capitalised = [w for w in words if w not in _PARTICLES]
    if not 1 + (not titled) <= len(capitalised) <= 4 or words[0] in _PARTICLES or words[-1] in _PARTICLES:
        return False
    for word in capitalised:
        if not _NAME_WORD.fullmatch(word) or not word[0].isupper():
            return False
        if word.casefold() in _NOT_NAMES or (len(word) > 1 and word.isupper()):
            return False
    return True


def _leading_name(words: list[str]) -> list[str]:
    """The words of a run up to its first lower-case word that is no particle: "Siobhán
    O'Connor and I was" -> Siobhán O'Connor; "Willem de Vries" stays whole."""
    name: list[str] = []
    for word in words:
        if not word[0].isupper() and word not in _PARTICLES:
            break
        name.append(word)
    while name and name[-1] in _PARTICLES:
        name.pop()
    return name


# Names a form or a letter announces: "Name: Ana Souza", "name = Nadia Haddad",
# `"full_name": "Kofi Boateng"`, "Dear Ms. Achieng Otieno", "my name is ...", "Dr Rezaei".
_CUE = re.compile(
    r"(?i:\b(?:(?:full|first|last|given|family|user|customer|account|contact)[ _]?names?|names?|surname"
    r"|contact|customer|patient|employee|beneficiary|recipient|sender|payee|account[ _]holder"
    r"|card[ _]?holder|reporter|author|speaker|applicant|tenant|landlord|assignee|owner"
    r"|signed(?: by)?|attn|my name is|dear|hi|hello|sincerely|regards|bill to|ship to|pay to))"
    r"""["']?[ \t]*(?:[:=]|\bis\b)?[ \t]*["']?[ \t]*(?P<title>""" + _TITLE + r"[ \t]+)?"
    r"|\b(?P<alone>" + _TITLE + r")[ \t]+"
)
_CAPITALISED_RUN = re.compile(_WORD + r"(?:[ \t]" + _WORD + r"){0,4}")


def cued_names(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each name a cue announces."""
    found = []
    for cue in _CUE.finditer(text):
        run = _CAPITALISED_RUN.match(text, cue.end())
        if not run:
            continue
        name = " ".join(_leading_name(run.group().split())).rstrip(".")
        titled = bool(cue.group("title") or cue.group("alone"))
        if name and name_shaped(name, titled=titled):
            found.append((run.start(), run.start() + len(name)))
    return found


def emailed_names(text: str, emails: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Names that an email address in the same text spells: "Kavya Reddy" and
    kavya.reddy@..., "Ji-woo Kim" and jiwoo.kim@..., "Aleksandr Petrov" and a.petrov@...,
    "Adebayo Ogunleye" and adebayo@..."""
    locals_ = [_tokens(text[start:end].split("@")[0]) for start, end in emails]
    found = []
    for run in _CAPITALISED_RUN.finditer(text) if locals_ else ():
        words = [(run.start() + w.start(), w.group()) for w in re.finditer(r"\S+", run.group())]
        for i in range(len(words)):
            for j in range(min(len(words), i + 4), i + 1, -1):  # the longest name first
                name = " ".join(w for _, w in words[i:j])
                if name_shaped(name) and any(_spells(name, local) for local in locals_):
                    found.append((words[i][0], words[i][0] + len(name)))
                    break
    return found


def _tokens(local_part: str) -> list[str]:
    return [t for t in re.split(r"[._+\-\d]+", local_part.casefold()) if t]


def _spells(name: str, local: list[str]) -> bool:
    parts = [p for p in (_fold(w) for w in re.split(r"[ '’.-]+", name)) if p]
    if not parts or not local:
        return False
    first, last = parts[0], parts[-1]
    if "".join(parts) in "".join(local) or local in ([first], [last]):  # adebayo@ beside Adebayo Ogunleye
        return True
    return last in local and (first in local or first[0] in local)


def _fold(word: str) -> str:
    """The ASCII letters of a word, as an email address spells it: Björn -> bjorn, Yılmaz -> yilmaz."""
    decomposed = unicodedata.normalize("NFKD", word.casefold().replace("ı", "i").replace("ß", "ss"))
    return "".join(c for c in decomposed if c.isascii() and c.isalpha())
