"""Keeping credentials out of every output: log lines, error messages, ``/health``, the CLI.

One policy, used by every layer that may show a DSN, a server URL or the text of an exception
raised by a client library (asyncpg, nats-py):

* **URLs are shown without their user info**: everything between ``scheme://`` and the *last*
  ``@`` becomes ``***`` (``postgresql://app:pw@db:5432/x`` -> ``postgresql://***@db:5432/x``), and
  ``password=``/``token=``-style query parameters are masked. Using the last ``@`` instead of
  parsing with :mod:`urllib` is deliberate: a password holding an unescaped ``/``, ``?`` or ``#``
  makes urllib end the user info early and show the rest of the password as host, path or query.
  Whatever the URL's shape, the password lies before its last ``@``.
* **Known secrets are replaced wherever they appear** (:class:`Redactor`): a client library may
  echo a DSN, or a *fragment* of a misparsed password (asyncpg reports ``invalid literal for
  int() with base 10: 'S3cr'`` for the password ``S3cr/et``), so the pieces of a password between
  URL delimiters are masked too when they stand alone in the text.
* **Malformed user info is refused early** (:func:`malformed_userinfo`): sinks and the CLI raise
  a configuration error that shows the redacted URL and says what to escape, instead of letting a
  client library connect to the wrong host with half a password.

Nothing here logs or raises; it only rewrites text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, unquote

__all__ = ["MASK", "Redactor", "describe_error", "malformed_userinfo", "one_line",
           "redact_text", "redact_url", "url_secrets"]

MASK = "***"
#: a URL scheme followed by ``//`` (``postgresql://``, ``nats://``, ``tls://``, ``wss://``)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: URLs inside free text: up to the next whitespace or quote
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
#: names whose value is a secret: ``password``, ``sslpassword``, ``auth_token``, ``client_secret``
_SECRET_KEYS = r"\w*(?:password|passwd|secret|token|api_?key)|pass|pwd"
#: ``password=...`` in a URL query (``?password=x&sslmode=...``)
_QUERY_SECRET = re.compile(rf"(?i)([?&;](?:{_SECRET_KEYS})=)[^&#\s]*")
#: ``password=...`` in libpq key/value text or a message (``password='a b'``)
_KV_SECRET = re.compile(rf"(?i)\b((?:{_SECRET_KEYS})\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s,;&)]+)")
#: ``"pass": "..."`` in JSON (a NATS CONNECT line echoed in an error)
_JSON_SECRET = re.compile(rf'(?i)("(?:{_SECRET_KEYS})"\s*:\s*)"(?:[^"\\]|\\.)*"')
#: what splits a misparsed password into the pieces a library may echo
_DELIMITERS = re.compile(r"[/?#@:]")
#: a piece shorter than this is not masked on its own (it would mask ordinary words)
MIN_FRAGMENT = 3
#: longest text :func:`describe_error` returns
MAX_DESCRIPTION = 500


def _split(url: str) -> tuple[str, str | None, str] | None:
    """``(scheme://, user info or None, the rest)``; None when ``url`` has no ``scheme://``."""
    m = _SCHEME.match(url)
    if m is None:
        return None
    rest = url[m.end():]
    at = rest.rfind("@")
    if at < 0:
        return m.group(), None, rest
    return m.group(), rest[:at], rest[at + 1:]


def redact_url(url: str) -> str:
    """``url`` without its user info and secret query parameters, however malformed:
    ``nats://alice:s3/cr#et@h:4222`` -> ``nats://***@h:4222``. Text that is not a URL is returned
    with only ``password=...``-style values masked."""
    parts = _split(url)
    if parts is None:
        return _KV_SECRET.sub(rf"\g<1>{MASK}", url)
    scheme, userinfo, rest = parts
    shown = _QUERY_SECRET.sub(rf"\g<1>{MASK}", rest)
    return f"{scheme}{MASK}@{shown}" if userinfo is not None else f"{scheme}{shown}"


def url_secrets(url: str) -> list[str]:
    """The credentials in ``url``: the password (or a lone user info, which NATS reads as a token;
    PostgreSQL as a user name) under the last-``@`` reading, and secret query values. How urllib
    would misread a malformed one yields pieces of these, which :class:`Redactor` masks too."""
    parts = _split(url)
    found: list[str] = []
    if parts is not None and (userinfo := parts[1]) is not None:
        _, colon, password = userinfo.partition(":")
        if colon:
            found.append(password)
        elif parts[0].lower() not in ("postgres://", "postgresql://"):
            found.append(userinfo)
    found += [m.group(0).split("=", 1)[1] for m in _QUERY_SECRET.finditer(url)]
    return [s for s in found if s]


def malformed_userinfo(url: str, *, allow_at: bool = False) -> bool:
    """True when ``url``'s user info holds a character that ends it early for urllib (and so
    for asyncpg and nats-py): an unescaped ``/``, ``?`` or ``#`` shows as an ``@`` after the
    first of them. Unless ``allow_at``, more than one ``@`` before it counts too (asyncpg splits
    the user info at the *first* ``@``; nats-py at the last)."""
    m = _SCHEME.match(url)
    if m is None:
        return False
    rest = url[m.end():]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return "@" in rest[end:] or (not allow_at and rest[:end].count("@") > 1)


def one_line(text: str) -> str:
    """``text`` on one line (servers add ``DETAIL``/``HINT`` lines), at most
    :data:`MAX_DESCRIPTION` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_DESCRIPTION else flat[:MAX_DESCRIPTION - 3] + "..."


class Redactor:
    """Masks a fixed set of secrets (and every URL's user info) in any text.

    ``secrets`` are masked wherever they occur, in their plain, percent-decoded and
    percent-encoded forms; ``urls`` contribute what :func:`url_secrets` finds, plus the pieces of
    each such secret between URL delimiters (at least :data:`MIN_FRAGMENT` characters) where they
    stand alone in the text. Cheap to call; build one per sink or command.
    """

    def __init__(self, *, secrets: Iterable[str | None] = (), urls: Iterable[str] = ()) -> None:
        whole: set[str] = set()
        for s in [*secrets, *(found for u in urls for found in url_secrets(u))]:
            if s:
                whole.update(v for v in (s, unquote(s), quote(s, safe="")) if v)
        pieces = {p for s in whole for p in _DELIMITERS.split(s)
                  if len(p) >= MIN_FRAGMENT and p not in whole}
        # longest first, so a secret is masked before a shorter one it contains
        self._whole = sorted(whole, key=len, reverse=True)
        self._pieces = (re.compile("|".join(
            rf"(?<![A-Za-z0-9]){re.escape(p)}(?![A-Za-z0-9])"
            for p in sorted(pieces, key=len, reverse=True))) if pieces else None)
        self._short = {s for s in whole if len(s) < MIN_FRAGMENT}

    def __call__(self, text: str) -> str:
        return redact_text(text, self)

    def mask_known(self, text: str) -> str:
        for secret in self._whole:
            if secret in self._short:
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK,
                              text)
            else:
                text = text.replace(secret, MASK)
        if self._pieces is not None:
            text = self._pieces.sub(MASK, text)
        return text


def redact_text(text: str, redactor: Redactor | None = None) -> str:
    """``text`` with the ``redactor``'s secrets masked, every URL's user info removed and
    ``password=...``-style values masked. Safe on any string (an exception's text, a path)."""
    if redactor is not None:
        text = redactor.mask_known(text)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    text = _JSON_SECRET.sub(rf'\g<1>"{MASK}"', text)
    return _KV_SECRET.sub(rf"\g<1>{MASK}", text)


def describe_error(exc: BaseException,
                   redact: Callable[[str], str] | None = None) -> str:
    """``TypeName: message`` on one line with credentials removed: the form in which an
    exception from anywhere (a client library included) may reach a log line or ``/health``."""
    text = str(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return one_line(redact(message) if redact is not None else redact_text(message))
