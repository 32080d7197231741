"""The rules that decide which of Presidio's spans to replace: plain functions, no engine."""

from __future__ import annotations

import re

import pytest

from thrift_cli import privacy_rules as rules


@pytest.mark.parametrize(
    ("span", "personal"),
    [
        ("93.184.216.34", True),
        ("2a02:1810:4d02:5b00:1c4:7e3b:9a1f:22d0", True),
        ("127.0.0.1", False),
        ("192.168.1.50/24", False),  # private
        ("203.0.113.77", False),  # documentation
        ("2001:db8::1", False),
        ("10.0.64.0/18", False),
        ("0.0.0.0/0", False),
        ("8.8.8.8", False),  # a public resolver
        ("255.255.192.0", False),
        ("999.1.1.1", False),  # not an address at all
    ],
)
def test_personal_ip(span, personal):
    assert rules.personal_ip(span) is personal


def test_a_four_part_version_is_no_address():
    text = "kernel 5.15.153.1-microsoft-standard-WSL2, Windows build 10.0.19041.1, host 81.2.69.160"
    spans = [(text.index(s), text.index(s) + len(s)) for s in ("5.15.153.1", "10.0.19041.1", "81.2.69.160")]
    assert [rules.keep(text, "IP_ADDRESS", *s) for s in spans] == [False, False, True]


@pytest.mark.parametrize(
    ("span", "shaped"),
    [
        ("Jean-Pierre Dubois", True),
        ("Siobhán O'Connor", True),
        ("Willem de Vries", True),
        ("Mei Lin Chen", True),
        ("Ayşe Yılmaz", True),
        ("Linux", False),  # one word needs a title
        ("Floyd-Warshall", False),
        ("Spring Boot", False),
        ("Set Up Python", False),
        ("App Router", False),
        ("de Vries", False),
        ("Filesystem      Size", False),
        ("e^(-πx²", False),
        ("JSON Schema", False),
        ("A B C D E", False),
    ],
)
def test_name_shaped(span, shaped):
    assert rules.name_shaped(span) is shaped


def test_one_word_is_a_name_after_a_title():
    text = "The GP is Dr Rezaei, not Linux."
    assert rules.keep(text, "PERSON", text.index("Rezaei"), text.index("Rezaei") + 6)
    assert not rules.keep(text, "PERSON", text.index("Linux"), text.index("Linux") + 5)


def _names(text, spans):
    return [text[start:end] for start, end in spans]


def test_cued_names():
    text = (
        "Name: Graham Pritchard\nmy name is Siobhán O'Connor and I was charged\n"
        'name = Nadia Haddad\n{"full_name": "Kofi Boateng"}\nDear Ms. Achieng Otieno,\n'
        "Debtor name: Willem de Vries\n- name: Install Dependencies\nHello World\n"
    )
    assert _names(text, rules.cued_names(text)) == [
        "Graham Pritchard",
        "Siobhán O'Connor",
        "Nadia Haddad",
        "Kofi Boateng",
        "Achieng Otieno",
        "Willem de Vries",
    ]


def test_names_an_email_spells():
    text = (
        "Kavya Reddy (kavya.reddy@proton.me), Aleksandr Petrov (a.petrov@yandex.ru), "
        "Ji-woo Kim (jiwoo.kim@hanbit.kr), Björn Lindqvist (bjorn.lindqvist@x.se), "
        "Adebayo Ogunleye (adebayo@fintech.ng); Support Team (support@x.io), Visual Studio."
    )
    emails = [(m.start(), m.end()) for m in re.finditer(r"[\w.]+@[\w.]+", text)]
    assert _names(text, rules.emailed_names(text, emails)) == [
        "Kavya Reddy",
        "Aleksandr Petrov",
        "Ji-woo Kim",
        "Björn Lindqvist",
        "Adebayo Ogunleye",
    ]
    assert rules.emailed_names(text, []) == []


@pytest.mark.parametrize(
    ("text", "entity_type", "value", "kept"),
    [
        ("created_at 1720659338", "UK_NHS", "1720659338", False),
        ("NHS number 1720659338", "UK_NHS", "1720659338", True),
        ("id (1717430400", "PHONE_NUMBER", "(1717430400", False),
        ("phone: 4155550134", "PHONE_NUMBER", "4155550134", True),
        ("phone: +1 415 555 0134", "PHONE_NUMBER", "+1 415 555 0134", True),
        ("account 123456789012", "US_BANK_NUMBER", "123456789012", False),  # counts up
        ("account 000000000", "US_BANK_NUMBER", "000000000", False),
        ("account 31890624517", "US_BANK_NUMBER", "31890624517", True),
        ("netmask 255.255.192.0", "PHONE_NUMBER", "255.255.192.0", False),
        ("brd ff:ff:ff:ff:ff:ff", "MAC_ADDRESS", "ff:ff:ff:ff:ff:ff", False),
        ("ether 8c:85:90:1b:4e:7a", "MAC_ADDRESS", "8c:85:90:1b:4e:7a", True),
    ],
)
def test_keep(text, entity_type, value, kept):
    start = text.index(value)
    assert rules.keep(text, entity_type, start, start + len(value)) is kept


def test_a_name_ends_before_its_possessive():
    text = "Priya Raman's card"
    assert text[: rules.name_end(text, "PERSON", 0, 13)] == "Priya Raman"
    assert rules.name_end(text, "EMAIL_ADDRESS", 0, 13) == 13
