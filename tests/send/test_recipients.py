"""Recipient fields (R-D1): the account's separator, quoted names, validation, encoded headers.

R-D1: each account has a recipient separator (comma by default, semicolon as the alternative)
used to split the recipient fields the user types; a field written with the other separator is
the manual's "only one of two recipients got it" problem and must be refused with a hint.
Pure functions: no daemon, no network.
"""

from __future__ import annotations

import re
import string
from email import policy
from email.header import decode_header, make_header

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bimmaild.send.recipients import (
    ParsedField,
    Recipient,
    RecipientError,
    envelope_addresses,
    header_value,
    parse_field,
    parse_fields,
)


def addresses(field: ParsedField) -> list[str]:
    return [r.address for r in field.recipients]


def test_semicolon_separator_splits() -> None:
    field = parse_field("a@x.fr; b@y.fr", ";")
    assert field == ParsedField((Recipient("", "a@x.fr"), Recipient("", "b@y.fr")), ())


def test_comma_separator_splits() -> None:
    assert addresses(parse_field("a@x.fr, b@y.fr,c@z.fr", ",")) == ["a@x.fr", "b@y.fr", "c@z.fr"]


def test_comma_in_quoted_display_name_does_not_split() -> None:
    field = parse_field('"Dupont, Jean" <jean@x.fr>, marie@y.fr', ",")
    assert field.recipients == (Recipient("Dupont, Jean", "jean@x.fr"), Recipient("", "marie@y.fr"))
    assert field.warnings == ()
    assert field.recipients[0].header() == '"Dupont, Jean" <jean@x.fr>'


def test_semicolon_in_quoted_display_name_does_not_split() -> None:
    field = parse_field('"Dupont; Jean" <jean@x.fr>; marie@y.fr', ";")
    assert field.recipients == (Recipient("Dupont; Jean", "jean@x.fr"), Recipient("", "marie@y.fr"))


def test_separator_inside_angle_brackets_or_comment_does_not_split() -> None:
    field = parse_field("<a@x.fr>, b@y.fr (work, Paris), <c@z.fr>", ",")
    assert field.recipients == (
        Recipient("", "a@x.fr"),
        Recipient("work, Paris", "b@y.fr"),  # 'addr (Name)': the old form, the comment is the name
        Recipient("", "c@z.fr"),
    )


def test_comments_in_a_name_are_dropped() -> None:
    field = parse_field("(work) Jean (the boss) Dupont <jean@x.fr> (Paris)", ",")
    assert field.recipients == (Recipient("Jean Dupont", "jean@x.fr"),)


def test_angle_address_without_name() -> None:
    field = parse_field("  <jean@x.fr>  ", ",")
    assert field.recipients == (Recipient("", "jean@x.fr"),)
    assert field.recipients[0].header() == "jean@x.fr"


def test_unquoted_display_name() -> None:
    field = parse_field("Jean  Dupont <jean@x.fr>; Marie <marie@y.fr>", ";")
    assert field.recipients == (Recipient("Jean Dupont", "jean@x.fr"), Recipient("Marie", "marie@y.fr"))
    assert header_value(field.recipients) == "Jean Dupont <jean@x.fr>, Marie <marie@y.fr>"


def test_unquoted_name_with_the_other_separator_is_one_name() -> None:
    """With ';', 'Dupont, Jean <jean@x.fr>' has only one address: a name, not a wrong separator."""
    field = parse_field("Dupont, Jean <jean@x.fr>; marie@y.fr", ";")
    assert field.recipients == (Recipient("Dupont, Jean", "jean@x.fr"), Recipient("", "marie@y.fr"))
    assert field.recipients[0].header() == '"Dupont, Jean" <jean@x.fr>'


def test_non_ascii_display_name_is_an_encoded_word_that_decodes_back() -> None:
    [recipient] = parse_field("Élodie Dupré <e@x.fr>", ",").recipients
    assert recipient == Recipient("Élodie Dupré", "e@x.fr")
    header = recipient.header()
    assert header.isascii() and "=?utf-8?" in header.lower() and header.endswith(" <e@x.fr>")
    assert str(make_header(decode_header(header))) == "Élodie Dupré <e@x.fr>"
    [mailbox] = policy.default.header_factory("To", header).addresses
    assert (mailbox.display_name, mailbox.addr_spec) == ("Élodie Dupré", "e@x.fr")
    assert parse_field(header, ",").recipients == (recipient,)


def test_non_ascii_name_with_specials_round_trips() -> None:
    recipient = Recipient("Dupré, Élodie", "e@x.fr")
    [mailbox] = policy.default.header_factory("To", recipient.header()).addresses
    assert mailbox.display_name == "Dupré, Élodie"
    assert parse_field(recipient.header(), ";").recipients == (recipient,)


def test_header_value_is_comma_separated_whatever_the_separator() -> None:
    field = parse_field('"Dupont; Jean" <jean@x.fr>; marie@y.fr', ";")
    assert header_value(field.recipients) == '"Dupont; Jean" <jean@x.fr>, marie@y.fr'
    assert header_value([]) == ""


def test_non_ascii_domain_is_written_as_its_a_label() -> None:
    recipient = Recipient("", "jean@exemple-é.fr")
    assert recipient.header() == "jean@xn--exemple--i1a.fr"
    assert not recipient.needs_smtputf8


def test_non_ascii_local_part_needs_smtputf8() -> None:
    recipient = Recipient("Zoé", "zoé@x.fr")
    assert recipient.needs_smtputf8
    assert recipient.header() == "Zoé <zoé@x.fr>"


@pytest.mark.parametrize(
    ("separator", "other", "text"),
    [
        (";", ",", "a@x.fr, b@y.fr"),
        (",", ";", "a@x.fr; b@y.fr"),
        (";", ",", "Jean <jean@x.fr>, Marie <marie@y.fr>"),
        (",", ";", '"Dupont, Jean" <jean@x.fr>;marie@y.fr'),
    ],
)
def test_wrong_separator_is_refused_with_the_setting_to_change(separator: str, other: str, text: str) -> None:
    """The manual's "only one of two recipients got it": never split or send it silently."""
    with pytest.raises(RecipientError) as caught:
        parse_field(text, separator)
    error = caught.value
    assert (error.index, error.text) == (0, text)
    assert f"separated by {other!r}" in error.message
    assert f"separator is {separator!r}" in error.message
    assert "'separator' setting" in error.message


def test_wrong_separator_in_a_later_entry() -> None:
    with pytest.raises(RecipientError) as caught:
        parse_field("a@x.fr; b@y.fr, c@z.fr", ";")
    assert (caught.value.index, caught.value.text) == (1, "b@y.fr, c@z.fr")


@pytest.mark.parametrize(
    ("separator", "text"),
    [
        (";", '"Dupont, Jean" <jean@x.fr>'),  # inside a quoted name
        (",", '"Dupont; Jean" <jean@x.fr>'),
        (";", "Dupont, Jean <jean@x.fr>"),  # one side is not address-like
        (",", "jean@x.fr;"),  # a stray trailing separator of the other kind
        (";", "jean@x.fr (home, Paris)"),  # inside a comment
    ],
)
def test_other_separator_without_two_addresses_is_no_warning(separator: str, text: str) -> None:
    field = parse_field(text, separator)
    assert addresses(field) == ["jean@x.fr"] and field.warnings == ()


@pytest.mark.parametrize("text", ["a@x.fr, b@y.fr,", ",a@x.fr,, b@y.fr , ,", "a@x.fr,\n  ,b@y.fr"])
def test_trailing_and_doubled_separators_are_ignored(text: str) -> None:
    assert parse_field(text, ",") == ParsedField((Recipient("", "a@x.fr"), Recipient("", "b@y.fr")), ())


@pytest.mark.parametrize("text", ["", "   ", " ; ;; "])
def test_empty_field(text: str) -> None:
    assert parse_field(text, ";") == ParsedField((), ())


def test_duplicates_are_kept_once_with_a_warning() -> None:
    field = parse_field("Jean <jean@x.fr>, marie@y.fr, JEAN@X.fr", ",")
    assert field.recipients == (Recipient("Jean", "jean@x.fr"), Recipient("", "marie@y.fr"))
    assert len(field.warnings) == 1 and "JEAN@X.fr" in field.warnings[0]


@pytest.mark.parametrize("bad", ["jean@", "a b@c.d", "<>", "Jean <jean@>", "@x.fr", "jean@x..fr", "<a@x.fr> <b@y.fr>"])
def test_invalid_entry_raises_naming_index_and_piece(bad: str) -> None:
    with pytest.raises(RecipientError) as caught:
        parse_field(f"ok@x.fr, {bad} ,other@y.fr", ",")
    assert (caught.value.index, caught.value.text) == (1, bad)
    assert repr(bad) in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_index_counts_entries_not_empty_pieces() -> None:
    with pytest.raises(RecipientError) as caught:
        parse_field(";; ok@x.fr;;; jean@", ";")
    assert (caught.value.index, caught.value.text) == (1, "jean@")


def test_name_without_brackets_gets_a_hint() -> None:
    with pytest.raises(RecipientError, match=re.escape("Jean Dupont <jean@x.fr>")):
        parse_field("Jean Dupont jean@x.fr", ",")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('"Dupont, Jean <jean@x.fr>, marie@y.fr', "quote"),
        ('"Dupont \\" <jean@x.fr>', "quote"),  # the escaped quote does not close
        ("Jean <jean@x.fr, marie@y.fr", "angle bracket"),
        ("jean@x.fr (home, marie@y.fr", "comment"),
    ],
)
def test_unterminated_quote_bracket_or_comment_raises(text: str, what: str) -> None:
    with pytest.raises(RecipientError, match=f"unterminated {what}") as caught:
        parse_field(text, ",")
    assert (caught.value.index, caught.value.text) == (0, text)


@pytest.mark.parametrize("text", ["jean@x.fr>", "Jean) <jean@x.fr>", "<jean@x.fr> Jean", "Jean\x00 <jean@x.fr>"])
def test_malformed_entry_raises(text: str) -> None:
    with pytest.raises(RecipientError) as caught:
        parse_field(text, ",")
    assert (caught.value.index, caught.value.text) == (0, text)


def test_escaped_quote_in_quoted_name() -> None:
    [recipient] = parse_field('"Jean \\"Jeannot\\" Dupont" <jean@x.fr>', ",").recipients
    assert recipient.display_name == 'Jean "Jeannot" Dupont'
    assert parse_field(recipient.header(), ",").recipients == (recipient,)


@pytest.mark.parametrize(
    "recipient",
    [Recipient("=?utf-8?q?=0D=0A?= Jean", "jean@x.fr"), Recipient("Jean", "=?utf-8?q?x?=@x.fr")],
)
def test_text_that_looks_like_an_encoded_word_is_kept_literally(recipient: Recipient) -> None:
    header = recipient.header()
    assert header.isascii() and "\r" not in header and "\n" not in header
    assert parse_field(header, ",").recipients == (recipient,)


def test_unknown_separator_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="separator"):
        parse_field("a@x.fr", " ")


@pytest.mark.parametrize(("name", "address"), [("", "jean@"), ("", " jean@x.fr"), ("Jean\r\nBcc: x@y.z", "jean@x.fr")])
def test_recipient_validates_when_built_directly(name: str, address: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the fault
        Recipient(name, address)


def test_parse_fields_warns_about_an_address_in_two_fields() -> None:
    to, cc, bcc = parse_fields("a@x.fr; b@y.fr", "B@Y.FR", "a@x.fr; c@z.fr", ";")
    assert (addresses(to), addresses(cc), addresses(bcc)) == (["a@x.fr", "b@y.fr"], ["B@Y.FR"], ["a@x.fr", "c@z.fr"])
    assert to.warnings == ()
    assert cc.warnings == ("B@Y.FR is in both To and Cc.",)
    assert bcc.warnings == ("a@x.fr is in both To and Bcc.",)
    assert envelope_addresses(to, cc, bcc) == ("a@x.fr", "b@y.fr", "c@z.fr")


def test_parse_fields_error_names_the_field() -> None:
    with pytest.raises(RecipientError) as caught:
        parse_fields("a@x.fr", "", "b@y.fr, c@z.fr", ";")
    error = caught.value
    assert (error.field, error.index, error.text) == ("bcc", 0, "b@y.fr, c@z.fr")
    assert error.message.startswith("Bcc: ")


_ATOM = st.text(string.ascii_lowercase + string.digits + "+-_", min_size=1, max_size=8)
_LOCAL = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.text(string.ascii_lowercase, min_size=2, max_size=6),
)
# Letters (any script), digits, punctuation — specials included — and spaces; no quotes or backslashes.
_NAME = st.text(st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters='"\\'), max_size=25).map(
    lambda name: " ".join(name.split())
)
_RECIPIENT = st.builds(lambda name, local, domain: Recipient(name, f"{local}@{domain}"), _NAME, _LOCAL, _DOMAIN)


@given(
    recipients=st.lists(_RECIPIENT, max_size=6, unique_by=lambda r: r.address.casefold()),
    separator=st.sampled_from([",", ";"]),
    spaced=st.booleans(),
)
def test_joined_headers_parse_back_to_the_same_addresses(
    recipients: list[Recipient], separator: str, spaced: bool
) -> None:
    """R-D1 round trip: header() of each recipient, joined with the account's separator."""
    text = (separator + " " if spaced else separator).join(r.header() for r in recipients)
    field = parse_field(text, separator)
    assert addresses(field) == [r.address for r in recipients]
    assert field.warnings == ()
    assert [r.display_name for r in field.recipients] == [r.display_name for r in recipients]
