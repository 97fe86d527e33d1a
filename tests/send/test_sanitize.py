"""Rich signatures are sanitised and rendered as text (R-F2, R-G1).

R-F2: a rich signature keeps its fonts and styles and embeds its own images,
but what leaves with a message has no script and nothing a mail client would
fetch when showing it (remote images, tracking pixels, CSS ``url()``).  The
plain-text rendering is the ``text/plain`` alternative of such a message.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bimmaild.send.sanitize import (
    ALLOWED_TAGS,
    LINK_SCHEMES,
    clean_style,
    html_to_text,
    image_placeholder,
    resolve_images,
    sanitize_html,
)


class _Collector(HTMLParser):
    """Every tag and attribute of sanitised HTML, to check invariants on it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, name, value or "") for name, value in attrs]


def _collect(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector


def _assert_safe(html: str) -> None:
    found = _collect(html)
    assert set(found.tags) <= ALLOWED_TAGS
    for tag, name, value in found.attrs:
        assert not name.startswith("on"), (tag, name)
        if tag == "img" and name == "src":
            assert value.startswith("cid:"), value
        if tag == "a" and name == "href":
            assert value.split(":", 1)[0].lower() in LINK_SCHEMES, value
        if name == "style":
            lowered = value.lower()
            assert "url" not in lowered and "expression" not in lowered and "@" not in lowered and "\\" not in lowered


# -- removal -------------------------------------------------------------------------------------------------


def test_scripts_and_event_handlers_are_removed() -> None:
    out = sanitize_html(
        '<div onclick="steal()" onmouseover="x()">Jean<script>alert(1)</script>'
        '<img src="logo.png" onerror="alert(2)"><body onload="y()">Dupont</body></div>',
        ["logo.png"],
    )
    assert "script" not in out and "alert" not in out and "steal" not in out
    assert "onclick" not in out and "onerror" not in out and "onload" not in out
    assert "Jean" in out and "Dupont" in out
    _assert_safe(out)


@pytest.mark.parametrize(
    "html",
    [
        '<a href="javascript:alert(1)">x</a>',
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<a href=" javascript:alert(1)">x</a>',
        '<a href="&#106;avascript:alert(1)">x</a>',
        '<a href="vbscript:msgbox(1)">x</a>',
        '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
        '<img src="data:image/png;base64,iVBORw0KGgo=">',
        '<img src="javascript:alert(1)">',
    ],
)
def test_dangerous_urls_are_removed(html: str) -> None:
    out = sanitize_html(html)
    assert "javascript" not in out.lower() and "vbscript" not in out and "data:" not in out
    _assert_safe(out)


@pytest.mark.parametrize(
    "html",
    [
        '<iframe src="https://evil.example/">inside</iframe>',
        '<object data="https://evil.example/x.swf">inside</object>',
        '<embed src="https://evil.example/x.swf">',
        '<form action="https://evil.example/"><input name="pw">inside<button>Go</button></form>',
        '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
        '<link rel="stylesheet" href="https://evil.example/s.css">',
        '<style>@import url("https://evil.example/s.css"); p { color: red }</style>',
        '<svg><image href="https://evil.example/p.png"/><script>alert(1)</script></svg>',
        '<base href="https://evil.example/">',
    ],
)
def test_embedded_and_external_elements_are_removed(html: str) -> None:
    out = sanitize_html(f"<p>before</p>{html}<p>after</p>")
    assert "evil" not in out and "inside" not in out and "import" not in out
    assert out == "<p>before</p><p>after</p>"


@pytest.mark.parametrize(
    "html",
    [
        '<img src="https://track.example/pixel.gif?u=jean" width="1" height="1">',
        '<img src="http://acme.example/logo.png">',
        '<img src="//acme.example/logo.png">',
        '<img src="cid:someone-elses@example.org">',
        '<img src="other.png">',
        '<img srcset="https://acme.example/logo.png 2x">',
        '<table background="https://track.example/bg.png"><tr><td>x</td></tr></table>',
    ],
)
def test_remote_images_and_tracking_pixels_are_removed(html: str) -> None:
    out = sanitize_html(html, ["logo.png"])
    assert "example" not in out and "other.png" not in out
    _assert_safe(out)


@pytest.mark.parametrize(
    "style",
    [
        "background: url(https://track.example/p.gif)",
        "background-image: URL ('https://track.example/p.gif')",
        "background: u\\72l(https://track.example/p.gif)",
        "background: image-set('https://track.example/p.gif' 1x)",
        "list-style: url(https://track.example/p.gif)",
        "width: expression(alert(1))",
        "behavior: url(https://evil.example/x.htc)",
        "-moz-binding: url(https://evil.example/x.xml#x)",
        "@import url(https://evil.example/s.css)",
        "color: red /* */; background: url(https://track.example/p.gif)",
        "position: fixed; top: 0",
    ],
)
def test_css_that_fetches_or_executes_is_removed(style: str) -> None:
    out = sanitize_html(f'<span style="{style}; font-weight: bold">x</span>')
    assert "example" not in out and "expression" not in out and "fixed" not in out
    assert out == '<span style="font-weight: bold">x</span>'


def test_clean_style_keeps_formatting() -> None:
    style = "color:#1a1a1a; font-family: 'Segoe UI', Arial, sans-serif; font-size: 10pt; margin: 0cm 0cm .0001pt"
    assert clean_style(style) == (
        "color: #1a1a1a; font-family: 'Segoe UI', Arial, sans-serif; font-size: 10pt; margin: 0cm 0cm .0001pt"
    )
    assert clean_style("color: rgb(10, 20, 30); width: calc(100% - 2px); mso-line-height-rule: exactly") == (
        "color: rgb(10, 20, 30); width: calc(100% - 2px); mso-line-height-rule: exactly"
    )
    assert clean_style("font-family: 'A;B'; color: red") == "font-family: 'A;B'; color: red"
    assert clean_style("background: url(x)") is None


# -- what is kept --------------------------------------------------------------------------------------------


def test_formatting_is_kept() -> None:
    html = (
        '<div style="font-family: Arial; color: #333"><b>Jean</b> <i>Dupont</i> <u>u</u> <strong>s</strong> '
        '<em>e</em> <span style="font-size: 9pt">small</span><br>'
        '<font face="Georgia" color="#ff0000" size="2">red</font>'
        "<h1>h1</h1><h6>h6</h6><p>para</p><hr><blockquote>quote</blockquote>"
        "<ul><li>one</li></ul><ol><li>two</li></ol>"
        '<table border="0" cellpadding="2" cellspacing="0"><thead><tr><th>head</th></tr></thead>'
        '<tbody><tr><td valign="top" bgcolor="#eeeeee" width="120">cell</td></tr></tbody></table></div>'
    )
    assert sanitize_html(html) == html


def test_links_are_kept_with_noopener_noreferrer() -> None:
    out = sanitize_html(
        '<a href="https://acme.example/?a=1&amp;b=2" target="_blank">site</a> '
        '<a href="mailto:jean@acme.example">mail</a> <a href="tel:+33123456789">phone</a> '
        '<a href="/relative">relative</a>'
    )
    assert out == (
        '<a href="https://acme.example/?a=1&amp;b=2" rel="noopener noreferrer">site</a> '
        '<a href="mailto:jean@acme.example" rel="noopener noreferrer">mail</a> '
        '<a href="tel:+33123456789" rel="noopener noreferrer">phone</a> '
        '<a rel="noopener noreferrer">relative</a>'
    )


def test_image_names_are_rewritten_to_cid_placeholders() -> None:
    names = ["logo.png", "mon logo é.png"]
    out = sanitize_html('<img src="logo.png" alt="ACME" width="120"><img src="mon%20logo%20%C3%A9.png">', names)
    assert out == (
        f'<img src="cid:{image_placeholder("logo.png")}" alt="ACME" width="120">'
        f'<img src="cid:{image_placeholder("mon logo é.png")}">'
    )
    assert image_placeholder("logo.png") == "logo.png@signature.invalid"
    assert sanitize_html(out, names) == out  # idempotent: stored bodies can be sanitised again


def test_resolve_images_maps_names_and_placeholders_to_content_ids() -> None:
    stored = sanitize_html('<img src="logo.png"><img src="https://x.example/p.gif">', ["logo.png"])
    assert resolve_images(stored, {"logo.png": "abc@acme.example"}) == '<img src="cid:abc@acme.example">'
    assert (
        resolve_images('<img src="logo.png">', {"logo.png": "abc@acme.example"}) == '<img src="cid:abc@acme.example">'
    )
    assert resolve_images('<img src="logo.png"><script>x</script>', {}) == ""


def test_a_refused_image_leaves_its_alt_text_not_an_empty_frame() -> None:
    out = sanitize_html('<p><img src="https://acme.example/logo.png" alt="ACME &amp; fils"> Jean</p>', [])
    assert out == "<p>ACME &amp; fils Jean</p>"
    assert sanitize_html('<img src="https://t.example/p.gif" width="1">', []) == ""
    assert sanitize_html(out, []) == out


_FRAGMENTS = [
    "<script>alert(1)</script>",
    '<img src="https://t.example/p.gif">',
    '<img src="logo.png" onerror="alert(1)">',
    '<a href="javascript:alert(1)">',
    '<a href="https://ok.example">',
    "</a>",
    '<div style="background:url(https://t.example/p.gif);color:red">',
    '<span style="width:expression(alert(1))">',
    "</div>",
    '<iframe src="https://t.example">',
    "<style>@import url(https://t.example/s.css);</style>",
    '<svg onload="alert(1)">',
    "<!--",
    "-->",
    "<b>",
    "text & <",
    '"',
    "'",
    '<img src="data:image/png;base64,AAAA">',
    "<table><tr><td>",
]


@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12))
def test_any_mix_of_hostile_fragments_comes_out_safe(fragments: list[str]) -> None:
    out = sanitize_html("".join(fragments), ["logo.png"])
    _assert_safe(out)
    assert sanitize_html(out, ["logo.png"]) == out


# -- plain-text rendering ---------------------------------------------------------------------------------------

TABLE_SIGNATURE = """
<table cellpadding="0" cellspacing="0" border="0" style="font-family: Arial, sans-serif; font-size: 9pt">
  <tr>
    <td valign="top" style="padding-right: 10px"><img src="logo.png" alt="ACME" width="80"></td>
    <td valign="top">
      <b>Jean&nbsp;Dupont</b><br>
      Directeur technique &mdash; ACME&nbsp;SA<br>
      T&eacute;l&nbsp;: <a href="tel:+33123456789">+33 1 23 45 67 89</a><br>
      <a href="https://acme.example/">acme.example</a> |
      <a href="mailto:jean.dupont@acme.example">jean.dupont@acme.example</a>
    </td>
  </tr>
  <tr><td>Fax:</td><td>+33 1 23 45 67 00</td></tr>
</table>
"""


def test_html_to_text_table_signature() -> None:
    assert html_to_text(TABLE_SIGNATURE) == (
        "Jean Dupont\n"
        "Directeur technique — ACME SA\n"
        "Tél : +33 1 23 45 67 89 <tel:+33123456789>\n"
        "acme.example <https://acme.example/> | jean.dupont@acme.example\n"
        "Fax: +33 1 23 45 67 00"
    )


def test_html_to_text_lists() -> None:
    html = (
        "<p>Find us:</p><ul><li>Paris</li><li><div>Lyon</div><ul><li>Part-Dieu</li></ul></li></ul><ol><li>x</li></ol>"
    )
    assert html_to_text(html) == "Find us:\n\n- Paris\n- Lyon\n  - Part-Dieu\n- x"


def test_html_to_text_links() -> None:
    html = (
        '<a href="https://acme.example">https://acme.example</a><br>'
        '<a href="https://acme.example/jobs">We are hiring</a><br>'
        '<a href="mailto:jean@acme.example">jean@acme.example</a><br>'
        '<a href="mailto:jean@acme.example">Write to me</a><br>'
        '<a href="https://linkedin.example/in/jean"><img src="in.png" alt="LinkedIn"></a>'
    )
    assert html_to_text(html) == (
        "https://acme.example\n"
        "We are hiring <https://acme.example/jobs>\n"
        "jean@acme.example\n"
        "Write to me <mailto:jean@acme.example>\n"
        "https://linkedin.example/in/jean"
    )


def test_html_to_text_whitespace_and_entities() -> None:
    html = "<div>  Jean \n\t Dupont&nbsp;&nbsp; </div><div>&lt;CTO&gt; &amp; co&#233;&nbsp;</div><div>&nbsp;</div>"
    out = html_to_text(html)
    assert out == "Jean Dupont\n<CTO> & coé"
    assert all(line == line.rstrip() for line in out.split("\n"))


def test_html_to_text_blocks_and_breaks_like_a_browser() -> None:
    assert html_to_text("<div>Jean<br></div><div>CTO</div>") == "Jean\nCTO"  # a <br> closing a block adds no line
    assert html_to_text("a<br><br>b") == "a\n\nb"
    assert html_to_text("<p>one</p><p>two</p>") == "one\n\ntwo"
    # Outlook writes every line as a paragraph without margins.
    assert html_to_text('<p style="margin:0cm 0cm .0001pt">one</p><p style="margin: 0">two</p>') == "one\ntwo"
    assert html_to_text("<pre>  a\n    b</pre>after<hr>end") == "  a\n    b\nafter\n----------\nend"
    assert html_to_text("<html><head><title>T</title><style>p {}</style></head><body>x <b>y</b></body></html>") == "x y"
    assert html_to_text("") == ""
