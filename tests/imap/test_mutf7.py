"""Modified UTF-7 (RFC 3501 §5.1.3): known vectors, strictness, and round trips.

Folder names arrive in this form and must be sent back exactly (R-C1); a name
that does not decode must be refused, never half-decoded.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bimmaild.imap import mutf7

VECTORS = [
    ("", ""),
    ("INBOX", "INBOX"),
    ("Sent Items", "Sent Items"),
    ("Éléments envoyés", "&AMk-l&AOk-ments envoy&AOk-s"),
    ("Éléments supprimés", "&AMk-l&AOk-ments supprim&AOk-s"),
    ("Courrier indésirable", "Courrier ind&AOk-sirable"),
    ("&", "&-"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("&&", "&-&-"),
    ("日本語", "&ZeVnLIqe-"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
    ("[Gmail]/Messages envoyés", "[Gmail]/Messages envoy&AOk-s"),
    ("Привет", "&BB8EQAQ4BDIENQRC-"),
    ("😀", "&2D3eAA-"),  # outside the BMP: a surrogate pair
    ("a\tb", "a&AAk-b"),  # control characters are shifted too
    ("~-+,", "~-+,"),
]


@pytest.mark.parametrize(("name", "wire"), VECTORS)
def test_known_vectors(name: str, wire: str) -> None:
    assert mutf7.encode(name) == wire
    assert mutf7.decode(wire) == name


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("&", "not closed"),
        ("Sent &AOk", "not closed"),
        ("&A-", "whole UTF-16"),  # 6 bits
        ("&AO-", "whole UTF-16"),  # 12 bits
        ("&AOkA-", "whole UTF-16"),  # 30 bits
        ("&AOl-", "padding bits"),  # 16 bits + 2 non-zero spare bits
        ("&AGE-", "printable ASCII"),  # "a" must stand for itself
        ("&ACY-", "printable ASCII"),  # "&" must be "&-"
        ("&ACA-", "printable ASCII"),  # " "
        ("&AOk/AOk-", "modified base64"),  # "/" is "," in modified base64
        ("&AOk=-", "modified base64"),  # no padding
        ("&AO k-", "modified base64"),
        ("&2D0-", "lone UTF-16 surrogate"),  # high surrogate alone
        ("&3gA-", "lone UTF-16 surrogate"),  # low surrogate alone
        ("Envoyés", "outside a"),  # raw 8-bit (UTF-8) is not modified UTF-7
        ("a\tb", "outside a"),
        ("a\x7fb", "outside a"),
    ],
)
def test_malformed_input_is_refused(wire: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        mutf7.decode(wire)


def test_adjacent_shifts_are_accepted() -> None:
    """Not what an encoder produces, but unambiguous: better shown decoded."""
    assert mutf7.decode("&AMk-&AOk-") == "Éé"
    assert mutf7.encode("Éé") == "&AMkA6Q-"


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        mutf7.encode("bad\udcff")


@given(st.text())
@example("&-&AOk-&")
@example("\x00\x7f\x80\uffff\U0010ffff")
def test_round_trip(name: str) -> None:
    wire = mutf7.encode(name)
    assert all(" " <= ch <= "~" for ch in wire), "the wire form is printable ASCII"
    assert mutf7.decode(wire) == name


@given(st.text())
def test_encoder_merges_adjacent_shifts(name: str) -> None:
    assert re.search(r"&[A-Za-z0-9+,]+-&[A-Za-z0-9+,]+-", mutf7.encode(name)) is None


@given(st.text(alphabet=st.sampled_from("&-AOk,+/=ZeVnLIqe2D3x \t\xe9"), max_size=30))
def test_decode_fails_only_with_value_error(wire: str) -> None:
    try:
        name = mutf7.decode(wire)
    except ValueError:
        return
    # Whatever decodes re-encodes to an equivalent wire form (adjacent shifts may merge).
    assert mutf7.decode(mutf7.encode(name)) == name
