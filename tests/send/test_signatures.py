"""Signatures through the daemon (R-F1, R-F2, R-G1), and what the delivered message carries (R-D2)."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.protocol.errors import BimmailError, ErrorCode
from tests.helpers import account_params
from tests.send.test_sending import add_account
from tests.servers.fixtures import MailServers

# A real 1x1 PNG (the decoder of any mail client must show it).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def parts(message: EmailMessage) -> list[EmailMessage]:
    payload = message.get_payload()
    assert isinstance(payload, list)
    out = [p for p in payload if isinstance(p, EmailMessage)]
    assert len(out) == len(payload)
    return out


def names(listing: dict[str, Any]) -> list[str]:
    return [s["name"] for s in listing["signatures"]]


async def offline_account(client: Client) -> None:
    await client.call("account.add", account_params())


async def test_order_default_and_names(client: Client) -> None:
    """R-F1: ordered list; move up/down/to a position keeps positions dense; at most one default."""
    await offline_account(client)
    for name in ("Work", "Short", "Legal"):
        listing = await client.call("signature.add", {"account": "Work", "name": name, "text": f"{name} sig"})
    assert names(listing) == ["Work", "Short", "Legal"]
    assert [s["position"] for s in listing["signatures"]] == [1, 2, 3]
    listing = await client.call("signature.move", {"account": "Work", "name": "Legal", "direction": "up"})
    assert names(listing) == ["Work", "Legal", "Short"]
    listing = await client.call("signature.move", {"account": "Work", "name": "Work", "direction": "up"})
    assert names(listing) == ["Work", "Legal", "Short"]  # already first: stays
    listing = await client.call("signature.move", {"account": "Work", "name": "Work", "position": 3})
    assert names(listing) == ["Legal", "Short", "Work"]
    listing = await client.call("signature.default", {"account": "Work", "name": "short"})  # case-insensitive
    assert [s["default"] for s in listing["signatures"]] == [False, True, False]
    listing = await client.call("signature.default", {"account": "Work", "name": "Legal"})
    assert [s["default"] for s in listing["signatures"]] == [True, False, False]
    listing = await client.call("signature.delete", {"account": "Work", "name": "Legal"})
    assert names(listing) == ["Short", "Work"] and not any(s["default"] for s in listing["signatures"])
    assert [s["position"] for s in listing["signatures"]] == [1, 2]
    with pytest.raises(BimmailError) as taken:
        await client.call("signature.add", {"account": "Work", "name": "WORK", "text": "x"})
    assert (taken.value.code, taken.value.field) == (ErrorCode.CONFLICT, "name")
    with pytest.raises(BimmailError) as renamed:
        await client.call("signature.modify", {"account": "Work", "name": "Short", "new_name": "work"})
    assert renamed.value.code == ErrorCode.CONFLICT
    listing = await client.call("signature.modify", {"account": "Work", "name": "Short", "new_name": "Brief"})
    assert names(listing) == ["Brief", "Work"]
    listing = await client.call("signature.default", {"account": "Work", "name": "Work"})
    listing = await client.call("signature.default", {"account": "Work", "name": None})
    assert not any(s["default"] for s in listing["signatures"])


async def test_bad_signature_input(client: Client) -> None:
    await offline_account(client)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x"}, "text"),
        ({"name": "x", "text": "a", "html": "<b>a</b>"}, "html"),
        ({"name": " ", "text": "a"}, "name"),
        ({"name": "x", "html": "<img src='a.png'>", "images": [{"filename": "a.png", "data": b"not a png"}]},
         "images[0]"),
        ({"name": "x", "html": "x", "images": [{"filename": "big.png", "data": PNG + bytes(600 * 1024)}]},
         "images[0]"),
        ({"name": "x", "html": "x", "images": [{"filename": "a.png"}]}, "images[0].data"),
        ({"name": "x", "text": "a", "images": [{"filename": "a.png", "data": PNG}]}, "images"),  # never sent
    ]  # fmt: skip
    for params, field in cases:
        with pytest.raises(BimmailError) as caught:
            await client.call("signature.add", {"account": "Work", **params})
        assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_PARAMS, field), params
    with pytest.raises(BimmailError) as missing:
        await client.call("signature.delete", {"account": "Work", "name": "nope"})
    assert missing.value.code == ErrorCode.NOT_FOUND
    await client.call("signature.add", {"account": "Work", "name": "a", "text": "a"})
    with pytest.raises(BimmailError) as no_direction:
        await client.call("signature.move", {"account": "Work", "name": "a"})
    assert no_direction.value.field == "direction"
    big = {"filename": "b.png", "data": PNG + bytes(400 * 1024)}
    images = [{**big, "filename": f"{i}.png"} for i in range(6)]
    with pytest.raises(BimmailError) as too_much:
        await client.call("signature.add", {"account": "Work", "name": "many", "html": "x", "images": images})
    assert too_much.value.field == "images" and "at most" in too_much.value.message
    assert names(await client.call("signature.list", {"account": "Work"})) == ["a"]


async def test_html_signature_is_sanitised_when_saved(client: Client) -> None:
    await offline_account(client)
    listing = await client.call(
        "signature.add",
        {"account": "Work", "name": "Rich", "html": '<p style="color:red">Jean<script>alert(1)</script>'
         '<img src="https://tracker.example/x.png"><a href="javascript:alert(1)">x</a></p>'},
    )  # fmt: skip
    body = listing["signatures"][0]["body"]
    assert "script" not in body and "tracker.example" not in body and "javascript" not in body
    assert "color:red" in body.replace(" ", "") and "Jean" in body


async def test_default_plain_signature_follows_the_delimiter(client: Client, mail_servers: MailServers) -> None:
    """R-D2, RFC 3676: the default signature after a '-- ' line; --signature/--no-signature override it."""
    await add_account(client, mail_servers)
    await client.call(
        "signature.add", {"account": "Work", "name": "Main", "text": "Jean Dupont\nACME", "default": True}
    )
    await client.call("signature.add", {"account": "Work", "name": "Short", "text": "JD"})
    first = await client.call("send", {"to": "bob@example.net", "text": "Bonjour,\n"})
    second = await client.call("send", {"to": "bob@example.net", "text": "Hi", "signature": "Short"})
    third = await client.call("send", {"to": "bob@example.net", "text": "Hi", "no_signature": True})
    assert (first["signature"], second["signature"], third["signature"]) == ("Main", "Short", None)
    one, two, three = (d.message.get_content() for d in await mail_servers.smtp.wait_for_deliveries(3))
    assert one.replace("\r\n", "\n").endswith("Bonjour,\n\n-- \nJean Dupont\nACME\n")
    assert two.replace("\r\n", "\n").endswith("Hi\n-- \nJD\n")
    assert "-- " not in three
    with pytest.raises(BimmailError) as missing:
        await client.call("send", {"to": "bob@example.net", "text": "x", "signature": "nope"})
    assert (missing.value.code, missing.value.field) == (ErrorCode.NOT_FOUND, "signature")


async def test_rich_signature_with_image_as_delivered(client: Client, mail_servers: MailServers) -> None:
    """R-F2: multipart/alternative, its HTML in multipart/related with the image as a cid: part that
    decodes back to the stored bytes; R-G1: the preview shows exactly what the message carries."""
    await add_account(client, mail_servers)
    await client.call(
        "signature.add",
        {"account": "Work", "name": "Rich", "default": True,
         "html": '<p><b>Jean Dupont</b><br><img src="logo.png" alt="ACME"></p>',
         "images": [{"filename": "logo.png", "data": PNG}]},
    )  # fmt: skip
    preview = await client.call("signature.preview", {"account": "Work", "name": "Rich"})
    await client.call("send", {"to": "bob@example.net", "subject": "Rich", "text": "Bonjour"})
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    message = delivery.message
    assert message.get_content_type() == "multipart/alternative"
    plain, related = parts(message)
    assert plain.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    html_part, image = parts(related)
    assert html_part.get_content_type() == "text/html" and image.get_content_type() == "image/png"
    assert image.get_content() == PNG
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html_part.get_content()
    assert "Disposition" not in image or image.get_content_disposition() == "inline"
    # The preview is what was delivered.
    assert preview["html"] in html_part.get_content()
    assert plain.get_content().replace("\r\n", "\n").endswith("\n" + preview["plain"] + "\n")
    assert preview["plain"] == "-- \n" + preview["text"]
    assert preview["text"].strip() == "Jean Dupont"
    [part] = preview["parts"]
    assert (part["content_id"], part["content_type"], part["size"]) == (image["Content-ID"], "image/png", len(PNG))
    assert "multipart/related" in preview["mime"] and "image/png" in preview["mime"]


async def test_deleting_an_account_deletes_its_signatures(client: Client) -> None:
    await offline_account(client)
    await client.call("signature.add", {"account": "Work", "name": "Main", "text": "x"})
    await client.call("account.delete", {"account": "Work", "confirm": True})
    await offline_account(client)
    assert (await client.call("signature.list", {"account": "Work"}))["signatures"] == []
