"""Provider presets (R-B2): the shipped database, its validation, lookups and the autoconfig parser.

R-B2: the daemon ships a provider database (Gmail, Outlook.com, Microsoft 365, Yahoo, Orange, Free,
SFR, La Poste, Bouygues, iCloud, GMX, OVH, Ionos, Zoho, Fastmail, Proton Mail Bridge) and fills the
settings from the address's domain.  These tests need no daemon and no network.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from pathlib import Path

import msgpack
import pytest

from bimmaild.accounts.autoconfig import load_directory, parse_autoconfig
from bimmaild.accounts.providers import (
    AUTH_METHODS,
    Provider,
    ProviderDatabase,
    ServerPreset,
    SmtpPreset,
    load_default,
    login_for,
)

REQUIRED_IDS = {
    "gmail", "outlook", "microsoft365", "yahoo", "orange", "free", "sfr", "laposte", "bouygues", "icloud",
    "gmx-net", "gmx-com", "ovh", "zoho", "zoho-eu", "fastmail", "protonmail-bridge",
}  # fmt: skip
IONOS_IDS = {"ionos-fr", "ionos-de", "ionos-com", "ionos-co-uk", "ionos-es", "ionos-it", "ionos-mx"}


@pytest.fixture(scope="module")
def db() -> ProviderDatabase:
    return load_default()


# --- the shipped data ---------------------------------------------------------------------------------


def test_every_required_provider_is_present(db: ProviderDatabase) -> None:
    ids = [provider.id for provider in db.all()]
    assert set(ids) >= REQUIRED_IDS | IONOS_IDS
    assert ids[:2] == ["gmail", "outlook"]  # file order
    assert len(ids) == len(set(ids))


def test_load_default_is_cached_and_all_returns_a_copy(db: ProviderDatabase) -> None:
    assert load_default() is db
    db.all().clear()
    assert db.all()


def test_every_entry_has_a_source_and_a_check_date(db: ProviderDatabase) -> None:
    for provider in db.all():
        assert provider.source.strip(), provider.id
        assert type(provider.last_checked) is date and provider.last_checked.year >= 2022, provider.id
        assert provider.auth and set(provider.auth) <= set(AUTH_METHODS), provider.id


def test_unverified_entries_say_what_is_unverified(db: ProviderDatabase) -> None:
    unverified = {provider.id for provider in db.all() if not provider.verified}
    assert {"bouygues", "sfr", "laposte"} | IONOS_IDS <= unverified
    for provider in db.all():
        if provider.verified:
            assert provider.caveat is None, provider.id
        else:
            assert provider.caveat and provider.caveat.strip(), provider.id
    bouygues = db.by_id("bouygues")
    assert bouygues is not None and bouygues.caveat is not None and "UNVERIFIED" in bouygues.caveat


def test_key_facts_of_the_presets(db: ProviderDatabase) -> None:
    gmail, outlook, m365, proton = (db.by_id(i) for i in ("gmail", "outlook", "microsoft365", "protonmail-bridge"))
    assert gmail is not None and outlook is not None and m365 is not None and proton is not None
    assert gmail.imap == ServerPreset("imap.gmail.com", 993, "ssl")
    assert gmail.smtp == SmtpPreset("smtp.gmail.com", 465, "ssl", True)
    assert set(gmail.auth) == {"app_password", "oauth2"}
    assert [p.id for p in db.all() if p.stores_sent_copy] == ["gmail"]
    assert outlook.auth == ("oauth2",) and m365.auth == ("oauth2",)
    assert any("OAuth2 only" in hint for hint in outlook.hints)
    assert "mail.protection.outlook.com" in m365.mx_suffixes
    assert proton.imap == ServerPreset("127.0.0.1", 1143, "starttls")
    assert proton.smtp == SmtpPreset("127.0.0.1", 1025, "starttls", True)
    assert any("--tls-ca-file" in hint for hint in proton.hints)
    assert any("Bridge" in hint and "password" in hint for hint in proton.hints)
    ionos_uk = db.by_id("ionos-co-uk")
    assert ionos_uk is not None and ionos_uk.imap.host == "imap.ionos.co.uk" and ionos_uk.domains == ("ionos.co.uk",)
    ovh = db.by_id("ovh")
    assert ovh is not None and ovh.imap.host == "ssl0.ovh.net" and any("Exchange" in h for h in ovh.hints)


def test_to_public_is_plain_data(db: ProviderDatabase) -> None:
    for provider in db.all():
        public = provider.to_public()
        assert json.loads(json.dumps(public)) == public
        assert msgpack.unpackb(msgpack.packb(public)) == public
    free = db.by_id("free")
    assert free is not None
    public = free.to_public()
    assert public["last_checked"] == free.last_checked.isoformat()
    assert public["imap"] == {"host": "imap.free.fr", "port": 993, "security": "ssl"}
    assert public["smtp"]["auth"] is True and public["login"] == "local_part" and public["caveat"] is None


def test_presets_are_immutable(db: ProviderDatabase) -> None:
    gmail = db.by_id("gmail")
    assert gmail is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        gmail.imap.port = 143  # type: ignore[misc]


# --- lookups ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "provider_id"),
    [
        ("gmail.com", "gmail"),
        ("GoogleMail.com.", "gmail"),
        ("  hotmail.com ", "outlook"),
        ("hotmail.fr", "outlook"),
        ("live.com", "outlook"),
        ("msn.com", "outlook"),
        ("ymail.com", "yahoo"),
        ("rocketmail.com", "yahoo"),
        ("yahoo.fr", "yahoo"),
        ("wanadoo.fr", "orange"),
        ("ORANGE.FR", "orange"),
        ("free.fr", "free"),
        ("neuf.fr", "sfr"),
        ("club-internet.fr", "sfr"),
        ("laposte.net", "laposte"),
        ("bbox.fr", "bouygues"),
        ("me.com", "icloud"),
        ("mac.com", "icloud"),
        ("icloud.com", "icloud"),
        ("gmx.de", "gmx-net"),
        ("gmx.ch", "gmx-net"),
        ("gmx.fr", "gmx-com"),
        ("gmx.co.uk", "gmx-com"),
        ("ionos.fr", "ionos-fr"),
        ("zoho.eu", "zoho-eu"),
        ("fastmail.com", "fastmail"),
        ("pm.me", "protonmail-bridge"),
    ],
)
def test_for_domain(db: ProviderDatabase, domain: str, provider_id: str) -> None:
    provider = db.for_domain(domain)
    assert provider is not None and provider.id == provider_id


@pytest.mark.parametrize(
    "domain",
    [
        "example.org",  # unknown
        "mail.gmail.com",  # subdomains are never matched
        "pro.orange.fr",
        "tenant.onmicrosoft.com",
        "gmail.com.evil.example",
        "",
        ".",
        "gmail..com",
        "not a domain",
        "x" * 300 + ".com",
    ],
)
def test_for_domain_without_match(db: ProviderDatabase, domain: str) -> None:
    assert db.for_domain(domain) is None


def test_for_address(db: ProviderDatabase) -> None:
    provider = db.for_address("Jean.Dupont@Free.fr")
    assert provider is not None and provider.id == "free"
    assert db.for_address("odd@name@wanadoo.fr") == db.by_id("orange")  # the domain follows the last '@'
    assert db.for_address("no-at-sign.example") is None
    assert db.for_address("@gmail.com") is None
    assert db.for_address("someone@example.org") is None
    assert db.by_id("nope") is None


def test_login_for(db: ProviderDatabase) -> None:
    free, orange, laposte = db.by_id("free"), db.by_id("orange"), db.by_id("laposte")
    assert free is not None and orange is not None and laposte is not None
    assert login_for(free, "jean.dupont@free.fr") == "jean.dupont"
    assert login_for(orange, " jean.dupont@orange.fr ") == "jean.dupont@orange.fr"
    assert login_for(laposte, "marie@laposte.net") == "marie"
    with pytest.raises(ValueError, match="not an e-mail address"):
        login_for(free, "jean.dupont")


def test_idn_domains_match_in_either_form() -> None:
    db = ProviderDatabase.from_toml(ENTRY.replace('domains = ["acme.example"]', 'domains = ["bücher.example"]'))
    acme = db.by_id("acme")
    assert acme is not None and acme.domains == ("xn--bcher-kva.example",)
    assert db.for_domain("BÜCHER.example.") is acme
    assert db.for_domain("xn--bcher-kva.example") is acme
    assert db.for_address("anna@bücher.example") is acme


# --- validation ---------------------------------------------------------------------------------------

ENTRY = """
[[provider]]
id = "acme"
name = "Acme Mail"
domains = ["acme.example"]
mx_suffixes = ["mx.acme.example"]
imap = { host = "imap.acme.example", port = 993, security = "ssl" }
smtp = { host = "smtp.acme.example", port = 587, security = "starttls", auth = true }
login = "address"
auth = ["password"]
stores_sent_copy = false
hints = ["a hint"]
source = "the test"
last_checked = 2026-12-04
verified = true
"""
OTHER = (
    ENTRY.replace('"acme"', '"other"').replace('["acme.example"]', '["other.example"]').replace("mx.acme", "mx.other")
)


def test_a_valid_entry_loads() -> None:
    (acme, other) = ProviderDatabase.from_toml(ENTRY + OTHER).all()
    assert acme == Provider(
        id="acme",
        name="Acme Mail",
        domains=("acme.example",),
        mx_suffixes=("mx.acme.example",),
        imap=ServerPreset("imap.acme.example", 993, "ssl"),
        smtp=SmtpPreset("smtp.acme.example", 587, "starttls", True),
        login="address",
        auth=("password",),
        stores_sent_copy=False,
        hints=("a hint",),
        source="the test",
        last_checked=date(2026, 12, 4),
        verified=True,
        caveat=None,
    )
    assert other.id == "other"


def test_templates_expand_per_tld() -> None:
    template = (
        ENTRY.replace('id = "acme"', 'id = "acme-{tld}"\ntlds = ["fr", "co.uk"]')
        .replace('"acme.example"', '"acme.{tld}"')
        .replace("imap.acme.example", "imap.acme.{tld}")
        .replace("mx.acme.example", "mx.acme.{tld}")
    )
    fr, uk = ProviderDatabase.from_toml(template).all()
    assert (fr.id, fr.domains, fr.imap.host) == ("acme-fr", ("acme.fr",), "imap.acme.fr")
    assert (uk.id, uk.domains, uk.imap.host) == ("acme-co-uk", ("acme.co.uk",), "imap.acme.co.uk")


def _set(old: str, new: str) -> str:
    assert old in ENTRY
    return ENTRY.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ENTRY + 'colour = "red"\n', "provider 'acme': unknown key(s) colour"),
        (_set('source = "the test"\n', ""), "provider 'acme': missing key(s) source"),
        (
            _set('security = "ssl"', 'security = "tls"'),
            "provider 'acme': imap.security must be one of ssl, starttls, none",
        ),
        (_set('security = "starttls"', 'security = "STARTTLS"'), "provider 'acme': smtp.security"),
        (_set("port = 993", "port = 0"), "provider 'acme': imap.port must be an integer from 1 to 65535"),
        (_set("port = 587", "port = 65536"), "provider 'acme': smtp.port"),
        (_set("port = 993", 'port = "993"'), "imap.port"),
        (_set("port = 993", "port = true"), "imap.port"),
        (_set(", auth = true }", " }"), "provider 'acme': 'smtp' must be a table with exactly the keys"),
        (_set('security = "ssl" }', 'security = "ssl", auth = true }'), "'imap' must be a table"),
        (_set("auth = true", 'auth = "yes"'), "smtp.auth must be true or false"),
        (_set('host = "imap.acme.example"', 'host = "imap acme"'), "imap.host 'imap acme' is not a host name"),
        (_set('domains = ["acme.example"]', 'domains = ["not a domain"]'), "'not a domain' in 'domains'"),
        (_set('domains = ["acme.example"]', 'domains = "acme.example"'), "'domains' must be a list"),
        (
            _set('domains = ["acme.example"]', 'domains = ["acme.example", "ACME.example."]'),
            "domain 'acme.example' is listed twice",
        ),
        (ENTRY + ENTRY, "provider 'acme': duplicate id"),
        (
            ENTRY + OTHER.replace('["other.example"]', '["Acme.Example."]'),
            "provider 'other': domain 'acme.example' is already claimed by 'acme'",
        ),
        (
            ENTRY + OTHER.replace("mx.other", "mx.acme"),
            "provider 'other': MX suffix 'mx.acme.example' is already claimed by 'acme'",
        ),
        (_set("verified = true", "verified = false"), "provider 'acme': an unverified entry needs a 'caveat'"),
        (_set("verified = true", 'verified = false\ncaveat = "  "'), "needs a 'caveat'"),
        (ENTRY + 'caveat = "maybe"\n', "'caveat' is only for unverified entries"),
        (_set("verified = true", 'verified = "yes"'), "'verified' must be true or false"),
        (_set("stores_sent_copy = false", "stores_sent_copy = 0"), "'stores_sent_copy' must be true or false"),
        (
            _set('auth = ["password"]', 'auth = ["kerberos"]'),
            "'auth' must list, once each, some of password, app_password, oauth2",
        ),
        (_set('auth = ["password"]', "auth = []"), "'auth' must list"),
        (_set('auth = ["password"]', 'auth = ["password", "password"]'), "'auth' must list"),
        (_set('login = "address"', 'login = "uid"'), "'login' must be one of address, local_part"),
        (_set("last_checked = 2026-12-04", 'last_checked = "2026-12-04"'), "'last_checked' must be a date"),
        (_set("last_checked = 2026-12-04", "last_checked = 2026-12-04T10:00:00"), "'last_checked' must be a date"),
        (_set('id = "acme"', 'id = "Acme_Mail"'), "id 'Acme_Mail' must be lowercase"),
        (_set('name = "Acme Mail"', 'name = " "'), "'name' must be a non-empty string"),
        (_set('hints = ["a hint"]', 'hints = "a hint"'), "'hints' must be a list of non-empty strings"),
        (_set('hints = ["a hint"]', 'hints = [""]'), "'hints' must be a list of non-empty strings"),
        (ENTRY + 'tlds = ["fr"]\n', "a template needs an id containing '{tld}'"),
        (_set('id = "acme"', 'id = "acme-{tld}"\ntlds = []'), "a template needs"),
        (_set('id = "acme"', 'id = "acme-{tld}"\ntlds = ["f r"]'), "'tlds' must be domain suffixes"),
        ('title = "presets"\n' + ENTRY, "only [[provider]] tables"),
        ("", "only [[provider]] tables"),
        ("[provider]\nid = 'acme'\n", "only [[provider]] tables"),
        ("[[provider]\n", "Expected ']]'"),
    ],
)
def test_validation_rejects_bad_data(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ProviderDatabase.from_toml(text)


def test_an_entry_without_an_id_is_named_by_position() -> None:
    with pytest.raises(ValueError, match=r"provider #2: missing key\(s\) id"):
        ProviderDatabase.from_toml(ENTRY + _set('id = "acme"\n', ""))


# --- Thunderbird autoconfig -------------------------------------------------------------------------------

AUTOCONFIG = b"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.net">
    <domain>example.net</domain>
    <domain>Example-Mail.net</domain>
    <domain>example.net</domain>
    <displayName>Example Net Mail</displayName>
    <displayShortName>Example</displayShortName>
    <incomingServer type="pop3">
      <hostname>pop.example.net</hostname>
      <port>995</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.net</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
      <authentication>OAuth2</authentication>
      <authentication>password-encrypted</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.net</hostname>
      <port>143</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.net</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </outgoingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.net</hostname>
      <port>465</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </outgoingServer>
    <documentation url="https://help.example.net/mail/clients">
      <descr lang="en">Configure your mail client</descr>
      <descr lang="fr">Configurer votre logiciel de messagerie</descr>
    </documentation>
  </emailProvider>
  <enable visiturl="https://mail.example.net/settings/imap">
    <instruction>You need to enable IMAP access</instruction>
    <instruction lang="fr">Vous devez activer l'acc\xc3\xa8s IMAP</instruction>
  </enable>
  <webMail>
    <loginPage url="https://mail.example.net/" />
  </webMail>
</clientConfig>
"""


def test_parse_autoconfig_takes_the_first_imap_and_smtp_servers() -> None:
    provider = parse_autoconfig(AUTOCONFIG)
    assert provider.id == "example-net"
    assert provider.name == "Example Net Mail"
    assert provider.domains == ("example.net", "example-mail.net")
    assert provider.imap == ServerPreset("imap.example.net", 993, "ssl")
    assert provider.smtp == SmtpPreset("smtp.example.net", 587, "starttls", True)
    assert provider.login == "local_part"
    assert provider.auth == ("password", "oauth2")
    assert provider.hints == ("You need to enable IMAP access (https://mail.example.net/settings/imap)",)
    assert not provider.verified and provider.caveat
    assert not provider.stores_sent_copy
    assert "example.net" in provider.source and type(provider.last_checked) is date
    assert login_for(provider, "jean@example.net") == "jean"
    assert ProviderDatabase([provider]).for_address("jean@example-mail.net") is provider


def test_parse_autoconfig_with_an_explicit_id_and_a_bom() -> None:
    provider = parse_autoconfig(b"\xef\xbb\xbf" + AUTOCONFIG, provider_id="example")
    assert provider.id == "example"
    with pytest.raises(ValueError, match="id 'Not An Id'"):
        parse_autoconfig(AUTOCONFIG, provider_id="Not An Id")


IMAP = (
    '<incomingServer type="imap"><hostname>imap.example.net</hostname><port>993</port>'
    "<socketType>SSL</socketType><username>%EMAILLOCALPART%</username>"
    "<authentication>password-cleartext</authentication></incomingServer>"
)
SMTP = (
    '<outgoingServer type="smtp"><hostname>smtp.example.net</hostname><port>465</port>'
    "<socketType>SSL</socketType><username>%EMAILADDRESS%</username>"
    "<authentication>none</authentication></outgoingServer>"
)
DOMAIN = "<domain>example.net</domain>"


def _doc(body: str, root: str = '<clientConfig version="1.1">') -> bytes:
    return (
        f'<?xml version="1.0"?>\n{root}<emailProvider id="example.net">{body}</emailProvider></clientConfig>'.encode()
    )


def test_parse_autoconfig_smtp_without_auth_and_a_different_smtp_login() -> None:
    provider = parse_autoconfig(_doc(DOMAIN + IMAP + SMTP))
    assert provider.smtp == SmtpPreset("smtp.example.net", 465, "ssl", False)
    assert provider.login == "local_part"
    assert provider.hints == ("the SMTP login is the full address",)
    assert provider.name == "example.net"  # no displayName


def test_parse_autoconfig_smtp_username_may_be_omitted() -> None:
    provider = parse_autoconfig(_doc(DOMAIN + IMAP + SMTP.replace("<username>%EMAILADDRESS%</username>", "")))
    assert provider.login == "local_part" and provider.hints == ()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE clientConfig [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<clientConfig version="1.1"><emailProvider id="x"><domain>&lol2;</domain></emailProvider></clientConfig>
"""


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (_doc(DOMAIN + SMTP), 'no <incomingServer type="imap">'),
        (_doc(DOMAIN + IMAP.replace('type="imap"', 'type="pop3"') + SMTP), 'no <incomingServer type="imap">'),
        (_doc(DOMAIN + IMAP), 'no <outgoingServer type="smtp">'),
        (_doc(IMAP + SMTP), "lists no <domain>"),
        (_doc(DOMAIN + IMAP.replace("<hostname>imap.example.net</hostname>", "") + SMTP), "has no <hostname>"),
        (_doc(DOMAIN + IMAP.replace("993", "") + SMTP), "has no <port>"),
        (_doc(DOMAIN + IMAP.replace("993", "imaps") + SMTP), "numeric port"),
        (_doc(DOMAIN + IMAP.replace("993", "70000") + SMTP), "imap.port must be an integer from 1 to 65535"),
        (_doc(DOMAIN + IMAP.replace(">SSL<", ">TLS<") + SMTP), "socketType SSL/STARTTLS/plain"),
        (_doc(DOMAIN + IMAP.replace("%EMAILLOCALPART%", "%EMAILLOCALPART%@example.net") + SMTP), "username"),
        (_doc(DOMAIN + IMAP.replace("<username>%EMAILLOCALPART%</username>", "") + SMTP), "has no <username>"),
        (
            _doc(DOMAIN + IMAP.replace("imap.example.net", "mail.%EMAILDOMAIN%") + SMTP),
            "placeholders are not supported",
        ),
        (_doc(DOMAIN + IMAP.replace("password-cleartext", "GSSAPI") + SMTP), "no password or OAuth2"),
        (
            _doc(DOMAIN + IMAP.replace("<authentication>password-cleartext</authentication>", "") + SMTP),
            "has no <authentication>",
        ),
        (_doc(DOMAIN + IMAP + SMTP, root='<clientConfig version="2.0">'), "<clientConfig version"),
        (b'<?xml version="1.0"?><clientConfig version="1.1"/>', "no <emailProvider>"),
        (b"<html><body>Not found</body></html>", "root element must be <clientConfig"),
        (b"this is not XML", "not well-formed XML"),
        (b"<clientConfig version='1.1'><emailProvider>", "not well-formed XML"),
        (b"", "not well-formed XML"),
        (BILLION_LAUGHS, "DOCTYPE"),
        (b'<?xml version="1.0"?><!doctype clientConfig SYSTEM "http://evil.example/x.dtd"><clientConfig/>', "DOCTYPE"),
        ("<clientConfig version='1.1'><emailProvider id='caf\u00e9'/></clientConfig>".encode("latin-1"), "not UTF-8"),
    ],
)
def test_parse_autoconfig_rejects_bad_documents(xml: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_autoconfig(xml)


# --- custom presets: a directory of autoconfig files ---------------------------------------------------------


def test_custom_presets_come_first_and_take_their_domains(tmp_path: Path) -> None:
    """R-B2: a site's own autoconfig file is a preset; it wins over a shipped one for its domains."""
    (tmp_path / "Mairie.xml").write_bytes(AUTOCONFIG.replace(b"Example-Mail.net", b"orange.fr"))
    (tmp_path / "broken.xml").write_bytes(b"<clientConfig version='1.1'><emailProvider/></clientConfig>")
    (tmp_path / "twice.xml").write_bytes(AUTOCONFIG)
    (tmp_path / "notes.txt").write_text("not a preset")
    custom, problems = load_directory(tmp_path)
    assert [p.id for p in custom] == ["mairie"]
    assert custom[0].source.startswith(str(tmp_path / "Mairie.xml")) and not custom[0].verified
    assert len(problems) == 2
    assert any("broken.xml" in p and "no <incomingServer" in p for p in problems), problems
    assert any("twice.xml" in p and "already in another custom preset" in p for p in problems), problems
    shipped = load_default()
    merged = shipped.with_custom(custom)
    assert merged.for_domain("orange.fr") is custom[0] and merged.for_domain("example.net") is custom[0]
    orange = merged.by_id("orange")
    assert orange is not None and "orange.fr" not in orange.domains and "wanadoo.fr" in orange.domains
    assert merged.for_domain("wanadoo.fr") is orange
    assert len(merged.all()) == len(shipped.all()) + 1
    assert load_directory(tmp_path / "absent") == ([], [])
