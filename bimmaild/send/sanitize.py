"""Rich-signature HTML: sanitising it, and rendering it as plain text (R-F2, R-G1).

A rich signature is pasted by the user from anywhere (a web page, Outlook, a
signature generator), then sent verbatim to every recipient.  It must keep its
formatting, but it must not carry scripts, nor anything a mail client fetches
when it displays the message: remote images, CSS ``url(…)``, ``@import``…
("no remote content fetched at send time": no tracking pixel leaves with our
mail, and nothing depends on a server being up).  Links stay: following one is
the recipient's choice.

The parsing and cleaning is done by ammonia (through ``nh3``), an allow-list
sanitiser built on a real HTML5 parser: regex cleaning of HTML is a known way to
get bypassed.  Ammonia does not look inside ``style`` attributes, so the CSS
declarations are filtered here, also by allow-list.

Images of the signature are attachments of the signature itself; the HTML
refers to them by file name (``<img src="logo.png">``).  ``sanitize_html``
rewrites those references to a stable ``cid:`` placeholder and
``resolve_images`` to the real Content-IDs of the inline MIME parts at
composition time; every other image source is dropped.

The plain-text rendering (``html_to_text``) is what goes into the
``text/plain`` alternative, so it follows how a browser lays the HTML out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from html.parser import HTMLParser
from urllib.parse import quote, unquote, urlsplit

import nh3

__all__ = ["cid_url", "clean_style", "html_to_text", "image_placeholder", "resolve_images", "sanitize_html"]

_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_TABLE_TAGS = frozenset({"table", "caption", "thead", "tbody", "tfoot", "tr", "td", "th", "col", "colgroup"})
_TEXT_TAGS = frozenset(
    {"b", "i", "u", "s", "strike", "strong", "em", "small", "big", "sub", "sup", "span", "font", "code", "abbr"}
)
_BLOCK_TAGS = frozenset({"div", "p", "br", "hr", "blockquote", "center", "pre", "address", "ul", "ol", "li"})
ALLOWED_TAGS = _HEADINGS | _TABLE_TAGS | _TEXT_TAGS | _BLOCK_TAGS | {"a", "img", "dl", "dt", "dd"}

# Dropped *with their content*: executable or embedded things, and containers whose
# text is not meant to be shown (a <title> pasted with a whole document).
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "noembed",
        "noframes", "template", "title", "form", "button", "textarea", "select", "svg", "math",
    }
)  # fmt: skip

_GLOBAL_ATTRIBUTES = {"style", "title", "dir", "lang", "align"}
_CELL_ATTRIBUTES = {"colspan", "rowspan", "width", "height", "valign", "bgcolor", "nowrap"}
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": _GLOBAL_ATTRIBUTES,
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace"},
    "font": {"face", "color", "size"},
    "table": {"border", "cellpadding", "cellspacing", "width", "height", "bgcolor", "summary"},
    "tr": {"valign", "bgcolor", "height"},
    "td": _CELL_ATTRIBUTES,
    "th": _CELL_ATTRIBUTES | {"scope"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "hr": {"size", "width", "noshade", "color"},
    "ol": {"start", "type"},
    "ul": {"type"},
    "li": {"value", "type"},
}

LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# "cid" must get through ammonia's scheme check so that our own placeholders
# survive a second sanitisation; the attribute filter then decides per tag.
_URL_SCHEMES = LINK_SCHEMES | {"cid"}

_PLACEHOLDER_DOMAIN = "signature.invalid"  # RFC 2606: never a real host, so never a real Content-ID


# -- CSS inside style="" ---------------------------------------------------------------------------

_STYLE_PROPERTIES = frozenset(
    {
        "color", "background", "background-color", "font", "font-family", "font-size", "font-style",
        "font-weight", "font-variant", "line-height", "letter-spacing", "word-spacing", "text-align",
        "text-decoration", "text-decoration-line", "text-decoration-color", "text-decoration-style",
        "text-indent", "text-transform", "white-space", "vertical-align", "direction", "width", "height",
        "min-width", "max-width", "min-height", "max-height", "display", "float", "clear", "list-style",
        "list-style-type", "list-style-position", "table-layout", "word-break", "word-wrap", "overflow-wrap",
        "opacity", "border-collapse", "border-spacing", "border-radius",
    }
)  # fmt: skip
_BOX_PROPERTY = re.compile(r"(?:margin|padding|border)(?:-(?:top|right|bottom|left))?(?:-(?:width|style|color))?")
_MSO_PROPERTY = re.compile(r"mso-[a-z-]+")  # Outlook's own layout hints: inert elsewhere, common in pasted signatures
# The only CSS functions kept: colours and arithmetic.  Everything else that can
# take a URL (url(), image(), image-set(), cross-fade(), src(), expression()…) is
# a function, so allow-listing functions closes the remote-fetch door at once.
_CSS_FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla", "calc"})
_CSS_FUNCTION_CALL = re.compile(r"([-\w]*)\s*\(")
# Backslash: CSS escapes can spell "url(" without those letters; "/*": comments can
# split a token; "@": at-rules (@import) have no business in a declaration; "<", ">": no markup.
_CSS_FORBIDDEN = ("\\", "/*", "@", "<", ">")


def _split_declarations(style: str) -> list[str]:
    """Split a style attribute on the semicolons that separate declarations (not those in quotes)."""
    parts: list[str] = []
    current: list[str] = []
    quote_char = ""
    for char in style:
        if quote_char:
            quote_char = "" if char == quote_char else quote_char
        elif char in "\"'":
            quote_char = char
        elif char == ";":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _clean_declaration(declaration: str) -> str | None:
    prop, colon, value = declaration.partition(":")
    prop, value = prop.strip().lower(), value.strip()
    if not colon or not value:
        return None
    if prop not in _STYLE_PROPERTIES and not _BOX_PROPERTY.fullmatch(prop) and not _MSO_PROPERTY.fullmatch(prop):
        return None
    lowered = value.lower()
    if any(token in lowered for token in _CSS_FORBIDDEN):
        return None
    if any(name not in _CSS_FUNCTIONS for name in _CSS_FUNCTION_CALL.findall(lowered)):
        return None
    return f"{prop}: {value}"


def clean_style(style: str) -> str | None:
    """The allowed declarations of a style attribute, or None when none is left."""
    kept = [d for d in map(_clean_declaration, _split_declarations(style)) if d is not None]
    return "; ".join(kept) or None


# -- images and links --------------------------------------------------------------------------------


def image_placeholder(name: str) -> str:
    """The Content-ID placeholder ``sanitize_html`` writes for the signature image called ``name``.

    Derived from the name only, so that stored signatures can be re-sanitised and
    resolved later; the ``.invalid`` domain makes it impossible to mistake for a real one.
    """
    return f"{quote(name, safe='')}@{_PLACEHOLDER_DOMAIN}"


def cid_url(content_id: str) -> str:
    """The ``cid:`` URL (RFC 2392) of a Content-ID given without its angle brackets."""
    return "cid:" + quote(content_id, safe="@")


def _image_name(src: str, names: Iterable[str]) -> str | None:
    """Which signature image ``src`` refers to: by name (raw or percent-encoded), or by placeholder."""
    for name in names:
        if src in (name, f"cid:{image_placeholder(name)}") or unquote(src) == name:
            return name
    return None


def _scheme(url: str) -> str:
    try:
        return urlsplit(url.strip()).scheme.lower()
    except ValueError:  # e.g. an unbalanced "[" in the host
        return ""


def _link_href(href: str) -> str | None:
    return href if _scheme(href) in LINK_SCHEMES else None  # relative links mean nothing in a mail


def _attribute_filter(image_src: Callable[[str], str | None], tag: str, attr: str, value: str) -> str | None:
    # Called by ammonia after its own checks; what is returned is emitted as is,
    # so every URL-bearing attribute must be decided here.
    if attr == "style":
        return clean_style(value)
    if tag == "img" and attr == "src":
        return image_src(value)
    if tag == "a" and attr == "href":
        return _link_href(value)
    return value


_IMAGE = re.compile(r"<img\b([^>]*)>", re.IGNORECASE)
_ALT = re.compile(r'\balt="([^"]*)"')


def _without_sourceless_images(html: str) -> str:
    """An image whose source was refused (remote, unknown) becomes its alt text, not an empty frame."""

    def replace(match: re.Match[str]) -> str:
        attributes = match.group(1)
        if re.search(r"\bsrc=", attributes):
            return match.group(0)
        alt = _ALT.search(attributes)
        return alt.group(1) if alt else ""

    return _IMAGE.sub(replace, html)


def _clean(html: str, image_src: Callable[[str], str | None]) -> str:
    return _without_sourceless_images(_nh3_clean(html, image_src))


def _nh3_clean(html: str, image_src: Callable[[str], str | None]) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=partial(_attribute_filter, image_src),
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def sanitize_html(html: str, image_names: Iterable[str] = ()) -> str:
    """A rich signature without scripts nor remote content, its own images referred to as ``cid:`` placeholders.

    Idempotent: sanitising the result again (with the same names) gives it back.
    """
    names = tuple(image_names)

    def image_src(src: str) -> str | None:
        name = _image_name(src, names)
        return None if name is None else f"cid:{image_placeholder(name)}"

    return _clean(html, image_src)


def resolve_images(html: str, content_ids: Mapping[str, str]) -> str:
    """Sanitise ``html`` and point its image references at real Content-IDs.

    ``content_ids`` maps each image name to its Content-ID (without angle brackets);
    a reference may be the name itself or the placeholder of ``sanitize_html``.
    """

    def image_src(src: str) -> str | None:
        name = _image_name(src, content_ids)
        return None if name is None else cid_url(content_ids[name])

    return _clean(html, image_src)


# -- plain-text rendering ------------------------------------------------------------------------------

_COLLAPSIBLE = re.compile(r"[ \t\n\r\f]+")  # what browsers collapse; U+00A0 (&nbsp;) is not part of it
_LINE_BLOCKS = frozenset(
    {
        "div", "tr", "table", "dl", "dt", "dd", "center", "address", "caption", "section", "article", "header",
        "footer", "nav", "aside", "figure", "figcaption", "main", "body",
    }
)  # fmt: skip
_SPACED_BLOCKS = _HEADINGS | {"p", "blockquote"}  # blocks with vertical margins: a blank line around them
_HIDDEN = frozenset({"script", "style", "title", "template", "noscript"})
_TEXT_LINK_SCHEMES = LINK_SCHEMES | {"ftp", "ftps"}
_RULE = "-" * 10  # not "-- ": that line is reserved for the signature delimiter
_MARGIN = re.compile(r"margin(-top|-bottom)?\s*:\s*([^;]*)", re.IGNORECASE)
_LENGTH = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+))")


def _zero_margins(style: str) -> bool:
    """Whether ``style`` cancels a paragraph's vertical margins (Outlook writes ``margin: 0cm 0cm .0001pt``)."""
    zero: set[str] = set()
    for side, value in _MARGIN.findall(style):
        lengths = [_LENGTH.match(token) for token in value.split()]
        if lengths and all(m is not None and abs(float(m.group(1))) < 0.5 for m in lengths):
            zero |= {"-top", "-bottom"} if not side else {side}
    return zero == {"-top", "-bottom"}


class _TextRenderer(HTMLParser):
    """Lays HTML out as lines of text the way a browser would, minus the styling."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current = ""
        self.open = False  # the current line has content: a block boundary must end it
        self.marker = False  # the current line holds only a list marker: a block inside <li> stays on it
        self.space = False  # collapsed whitespace is pending before the next word
        self.blank = False  # a blank line (a paragraph margin) is pending before the next content
        self.hidden = 0
        self.pre = 0
        self.lists = 0
        self.spaced: list[bool] = []  # per open <p>/<hN>/<blockquote>: does it have margins
        self.links: list[tuple[str | None, int]] = []  # href, and where in ``written`` its text begins
        self.written: list[str] = []

    # -- output primitives
    def _end_line(self) -> None:
        self.lines.append(self.current.rstrip())
        self.current, self.open, self.marker, self.space = "", False, False, False

    def _block(self, spaced: bool = False) -> None:
        if self.marker:
            return
        if self.open:
            self._end_line()
        self.space = False
        self.blank = self.blank or spaced

    def _write(self, text: str) -> None:
        if self.blank and self.lines and self.lines[-1] != "":
            self.lines.append("")
        if self.space and self.current and not self.marker:
            text = " " + text
        self.blank = self.space = self.marker = False
        self.current += text
        self.open = True
        self.written.append(text)

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self._end_line()
        elif tag == "hr":
            self._block()
            self._write(_RULE)
            self._end_line()
        elif tag == "li":
            self.marker = False
            self._block()
            self._write("  " * max(self.lists - 1, 0) + "- ")
            self.marker = True
        elif tag in ("td", "th"):
            self.space = True
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.written)))
        elif tag in _SPACED_BLOCKS:
            self.spaced.append(not _zero_margins(dict(attrs).get("style") or ""))
            self._block(spaced=self.spaced[-1])
        elif tag in _LINE_BLOCKS or tag in ("ul", "ol", "pre"):
            self._block()
            self.lists += tag in ("ul", "ol")
            self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag == "a" and self.links:
            self._end_link(*self.links.pop())
        elif tag in _SPACED_BLOCKS:
            self._block(spaced=self.spaced.pop() if self.spaced else True)
        elif tag in _LINE_BLOCKS or tag in ("ul", "ol", "pre", "li"):
            self.marker = False
            self._block()
            self.lists = max(self.lists - (tag in ("ul", "ol")), 0)
            self.pre = max(self.pre - (tag == "pre"), 0)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            self._preformatted(data)
            return
        if _COLLAPSIBLE.match(data):
            self.space = self.open
        for i, word in enumerate(w for w in _COLLAPSIBLE.split(data) if w):
            self.space = self.space or i > 0
            self._write(word.replace("\u00a0", " "))
        if _COLLAPSIBLE.match(data[-1:]):
            self.space = self.open

    def _preformatted(self, data: str) -> None:
        for i, line in enumerate(data.replace("\r\n", "\n").split("\n")):
            if i:
                self._end_line()
            if line:
                self._write(line.replace("\u00a0", " "))

    def _end_link(self, href: str | None, start: int) -> None:
        if not href or _scheme(href) not in _TEXT_LINK_SCHEMES:
            return
        text = "".join(self.written[start:]).strip()
        shown = href.split(":", 1)[1] if href.lower().startswith(("mailto:", "tel:")) else href
        if not text:
            self.space = self.space or self.open
            self._write(shown)
        elif text.rstrip("/") not in (href.rstrip("/"), shown.rstrip("/")):
            self.space = True
            self._write(f"<{href}>")

    def text(self) -> str:
        if self.open:
            self._end_line()
        return "\n".join(self.lines).strip("\n")


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of ``html``: lines without trailing spaces, no final newline."""
    renderer = _TextRenderer()
    renderer.feed(html)
    renderer.close()
    return renderer.text()
