"""Camera URLs: parse them once, redact their secrets, check them.

Secrets are found by parsing the URL (scheme, user info, host, port, path, query), never by a
pattern over a whole message: the password of the user info and the values of query (and fragment)
parameters whose name says secret (``pwd``, ``password``, ``pass``, ``token``, ``key``, ``auth``,
``secret``, ...). The user info is taken up to the LAST ``@`` that is followed by a host, so a
password holding ``/``, ``?``, ``#`` or ``@`` is hidden whole. Leading and trailing spaces are
ignored. ``redact`` shows the rest (user name, host, port, path) so that a message stays useful;
``scrub`` removes a URL's secrets from any text (an exception from a network library, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MASK = "***"
SECRET_WORDS = ("pass", "pwd", "token", "secret", "auth", "key", "sig", "cred")
NETWORK_SCHEMES = ("rtsp", "http")  # what capture.live can open over the network
_HOST_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%")


@dataclass(frozen=True)
class UrlParts:
    """A URL split without losing its text: ``scheme:slashes[user[:password]@]host[:port]rest``."""

    scheme: str
    slashes: str
    user: str | None  # None: no user info
    password: str | None  # None: no ':' in the user info
    host: str
    port: str | None  # the port's text (not checked), None when absent
    rest: str  # path, query and fragment as written

    @property
    def path(self) -> str:
        return self.rest.split("?", 1)[0].split("#", 1)[0]

    @property
    def query(self) -> str:
        before_fragment = self.rest.split("#", 1)[0]
        return before_fragment.split("?", 1)[1] if "?" in before_fragment else ""

    @property
    def fragment(self) -> str:
        return self.rest.split("#", 1)[1] if "#" in self.rest else ""


def scheme_of(text: str) -> str | None:
    """The URL scheme of ``text`` (lower case), None for a path (``C:\\x`` is a path)."""
    text = text.strip()
    colon = text.find(":")
    if colon < 2:
        return None
    scheme = text[:colon]
    if not (scheme[0].isascii() and scheme[0].isalpha() and all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)):
        return None
    return scheme.lower()


def is_url(text: str) -> bool:
    """True for ``scheme://...`` (and ``scheme:/...``): what a network camera is named by."""
    scheme = scheme_of(text)
    return scheme is not None and text.strip()[len(scheme) + 1 :].startswith("/")


def split_url(text: str) -> UrlParts | None:
    """The parts of a URL; None when ``text`` has no scheme (a path, ``usb:0`` has one)."""
    text = text.strip()
    scheme = scheme_of(text)
    if scheme is None:
        return None
    rest = text[len(scheme) + 1 :]
    body = rest.lstrip("/")
    slashes = rest[: len(rest) - len(body)]
    at = _userinfo_end(body)
    user = password = None
    if at >= 0:
        user, colon, secret = body[:at].partition(":")
        password = secret if colon else None
        body = body[at + 1 :]
    end = _authority_end(body)
    host, port = _host_port(body[:end])
    return UrlParts(text[: len(scheme)], slashes, user, password, host, port, body[end:])


def redact(url: str) -> str:
    """``url`` with its secrets replaced by ``***``: ``rtsp://admin:***@10.0.0.5/s?token=***``."""
    parts = split_url(url)
    if parts is None:
        return url.strip()
    userinfo = ""
    if parts.user is not None:
        userinfo = parts.user + (":" + MASK if parts.password is not None else "") + "@"
    hostport = parts.host + (":" + parts.port if parts.port is not None else "")
    rest = _redact_parameters(parts.path, parts.query, parts.fragment, "?" in parts.rest.split("#", 1)[0], "#" in parts.rest)
    return f"{parts.scheme}:{parts.slashes}{userinfo}{hostport}{rest}"


def secrets(url: str) -> list[str]:
    """The secret strings of ``url`` as written and percent-decoded, longest first."""
    parts = split_url(url)
    if parts is None:
        return []
    found = [parts.password or ""]
    for text in (parts.query, parts.fragment):
        found += [value for key, value in _parameters(text) if _is_secret(key)]
    try:  # what a plain parser would take for the password, should a library print it
        found.append(urlsplit(url.strip()).password or "")
    except ValueError:
        pass
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (a message that may quote ``url`` or its parts) with the URL's secrets hidden."""
    for form in {url, url.strip()}:
        if form:
            text = text.replace(form, redact(url))
    for secret in secrets(url):
        if len(secret) >= 3:
            text = text.replace(secret, MASK)
        else:  # too short to replace everywhere: only where it stands as a password
            text = text.replace(f":{secret}@", f":{MASK}@").replace(f"={secret}", f"={MASK}")
    return text


def mask_userinfo(text: str) -> str:
    """A source that is not a URL but may be a mistyped one (``rtsp//admin:pw@host/x``,
    ``admin:pw@host``): everything before its last ``@`` hidden when a ``:`` stands there (a
    ``user:password``); other texts unchanged."""
    at = text.rfind("@")
    if at < 0 or ":" not in text[:at]:
        return text
    return MASK + text[at:]


def url_problem(url: str, schemes: tuple[str, ...] = NETWORK_SCHEMES) -> str | None:
    """What is wrong with a network camera URL (one phrase, secrets redacted), None when fine."""
    if url != url.strip():
        return "has spaces around it"
    parts = split_url(url)
    if parts is None or not is_url(url):
        return "is not a URL (scheme://host/...)"
    if parts.scheme.lower() not in schemes:
        return f"unknown scheme {parts.scheme!r} (known: {', '.join(s + '://' for s in schemes)})"
    if len(parts.slashes) > 2:
        return "has no host"
    if parts.slashes != "//":
        return f"needs '//' after '{parts.scheme}:'"
    return _authority_problem(parts)


def _authority_problem(parts: UrlParts) -> str | None:
    if parts.user is not None and any(c in (parts.user + (parts.password or "")) for c in "/?#"):
        return "the user name or password holds '/', '?' or '#': write them percent-encoded (%2F, %3F, %23)"
    if not parts.host or parts.host == "[]":
        return "has no host"
    if not (parts.host.startswith("[") and parts.host.endswith("]")) and not set(parts.host) <= _HOST_CHARS:
        return f"host {parts.host!r} is not a valid host name"
    if parts.port is not None:
        if not parts.port.isdigit() or not 1 <= int(parts.port) <= 65535:
            return f"port {parts.port!r} is not a number from 1 to 65535"
    if any(c.isspace() for c in parts.rest):
        return "has spaces in its path (write them as %20)"
    return None


def _userinfo_end(body: str) -> int:
    """The index of the '@' that ends the user info, -1 when there is none: the last '@' before the
    first '/', '?' or '#' (the standard), unless a later '@' is followed by a host and preceded by
    ``user:`` (a password holding '/', '?' or '#', written unencoded)."""
    end = _authority_end(body)
    at = len(body)
    while (at := body.rfind("@", 0, at)) > end:
        after = body[at + 1 :]
        host, port = _host_port(after[: _authority_end(after)])
        plausible = bool(host) and set(host) <= _HOST_CHARS | set("[]:") and (port is None or port.isdigit())
        in_query = body[end] == "/" and "?" in body[:at] and _valid_hostport(body[:end])  # host:80/v?mail=a@b: no user
        if plausible and ":" in body[:at] and not in_query:
            return at
    return at  # the last '@' of the standard user info, or -1


def _valid_hostport(text: str) -> bool:
    host, port = _host_port(text)
    return bool(host) and set(host) <= _HOST_CHARS and (port is None or (port.isdigit() and 1 <= int(port) <= 65535))


def _authority_end(body: str) -> int:
    ends = [i for i in (body.find(c) for c in "/?#") if i >= 0]
    return min(ends) if ends else len(body)


def _host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):  # [IPv6]:port
        close = hostport.find("]")
        if close >= 0:
            tail = hostport[close + 1 :]
            return hostport[: close + 1], (tail[1:] if tail.startswith(":") else None)
    host, colon, port = hostport.partition(":")
    return host, (port if colon else None)


def _parameters(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split("&"):
        key, equals, value = item.partition("=")
        if equals:
            pairs.append((key, value))
    return pairs


def _is_secret(key: str) -> bool:
    name = unquote(key).lower()
    return any(word in name for word in SECRET_WORDS)


def _redact_parameters(path: str, query: str, fragment: str, has_query: bool, has_fragment: bool) -> str:
    out = path
    if has_query:
        out += "?" + _redact_pairs(query)
    if has_fragment:
        out += "#" + _redact_pairs(fragment)
    return out


def _redact_pairs(text: str) -> str:
    items = []
    for item in text.split("&"):
        key, equals, _value = item.partition("=")
        items.append(f"{key}={MASK}" if equals and _is_secret(key) else item)
    return "&".join(items)
