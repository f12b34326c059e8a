"""Checks the config runs on values whose shape a type cannot express: URLs, hosts and paths.

Each one rejects, at ``config check`` time, a value that would otherwise make ``run`` fail later
(or worse, fail only when the backend comes back): a ``ws://`` URL without a host, a port out of
range, a SQLite path that is a directory, a journal directory that is a file.

Messages never quote what they check when it may hold a secret (a DSN, a server URL with
credentials): a URL-parsing error from the standard library can quote a piece of a password
(``Port could not be cast to integer value as 'pa'`` for ``postgresql://u:pa/ss@db``), so URLs are
split here by hand and explained in our own words.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Final

__all__ = ["check_bind_host", "check_dir_path", "check_dsn", "check_file_path",
           "check_server_url", "check_url"]

_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_BAD_CHARS: Final = re.compile(r"[\s\x00-\x1f\x7f]")
_ENCODE_HINT: Final = ("percent-encode '/', '?', '#' and '@' in the user name and password "
                       "(%2F, %3F, %23, %40)")


def _is_hostname(text: str) -> bool:
    name = text.removesuffix(".")
    labels = name.split(".")
    # an all-digit last label is a mistyped IPv4 address (999.1.1.1), never a name
    return (0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(p) for p in labels)
            and not labels[-1].isdigit())


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (``127.0.0.0/8``, ``::1``,
    ``localhost``); a host name other than ``localhost`` may resolve anywhere: False."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str) -> str:
    """An address to listen on: an IP literal or a host name (``0.0.0.0``/``::`` = all)."""
    if not host:
        raise ValueError("empty host: use 127.0.0.1 (this machine) or 0.0.0.0 (every interface)")
    if not (_is_ip(host) or _is_hostname(host)):
        raise ValueError(f"{host!r} is neither an IP address nor a host name")
    return host


class _Parts:
    """``scheme://userinfo@hostports/rest``, split without urllib (see the module docstring)."""

    def __init__(self, url: str, schemes: tuple[str, ...], *, what: str) -> None:
        if _BAD_CHARS.search(url):
            raise ValueError(f"{what}contains whitespace or control characters")
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in schemes:
            raise ValueError(f"{what}must start with {' or '.join(s + '://' for s in schemes)}")
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        authority, self.tail = rest[:cut], rest[cut:]
        if "@" in self.tail and "@" not in authority:
            raise ValueError(f"{what}the user name or password contains an unescaped "
                             f"character; {_ENCODE_HINT}")
        self.scheme = scheme.lower()
        self.has_userinfo = "@" in authority
        self.hostports = authority.rpartition("@")[2]


def _split_hostport(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):  # [::1]:8080
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError("malformed [IPv6] address")
        return host, after[1:] if after else None
    host, colon, port = hostport.partition(":")
    return host, port if colon else None


def _check_port(port: str | None, what: str) -> None:
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65_535):
        raise ValueError(f"{what}the port must be a number from 1 to 65535")


def _check_host(host: str, what: str, *, quote: bool) -> None:
    ok = _is_ip(host) if ":" in host else (_is_ip(host) or _is_hostname(host))
    if not ok:
        shown = f" {host!r}" if quote else ""
        raise ValueError(f"{what}the host{shown} is not a valid host name or IP address")


def check_url(url: str, schemes: tuple[str, ...]) -> str:
    """A base URL a client connects to (``ws_url``, ``rest_url``): one host, an optional port
    in 1..65535, a path, no query or fragment (paths are appended to it). Messages end with
    the URL (any credentials in it are masked by the config's error report)."""
    try:
        parts = _Parts(url, schemes, what="")
        host, port = _split_hostport(parts.hostports)
        if not host:
            raise ValueError("has no host")
        _check_host(host, "", quote=False)
        _check_port(port, "")
        if "?" in parts.tail or "#" in parts.tail:
            raise ValueError("is a base URL: no query ('?') or fragment ('#')")
    except ValueError as exc:
        raise ValueError(f"{exc}, got {url!r}") from None
    return url


def check_server_url(url: str, *, what: str) -> str:
    """A NATS server URL (``nats://``, ``tls://``, ``ws://``, ``wss://``; a bare ``host:port``
    means ``nats://host:port``, as in the client). It may carry credentials: never quoted."""
    full = url if "://" in url else f"nats://{url}"
    what = f"{what}: "
    parts = _Parts(full, ("nats", "tls", "ws", "wss"), what=what)
    for hostport in parts.hostports.split(","):
        host, port = _split_hostport(hostport)
        if not host:
            raise ValueError(f"{what}has no host")
        _check_host(host, what, quote=False)
        _check_port(port, what)
    return url


def check_dsn(dsn: str) -> str:
    """A PostgreSQL connection URI as the driver (asyncpg) takes it:
    ``postgresql://user:password@host:port,host2:port/db?sslmode=require``. Never quoted."""
    what = ""
    parts = _Parts(dsn, ("postgresql", "postgres"), what=what)
    if "#" in parts.tail:
        raise ValueError(f"contains '#'; {_ENCODE_HINT}")
    for hostport in parts.hostports.split(","):
        if not hostport:
            continue  # no host: the driver's default (or ?host=/run/postgresql)
        host, port = _split_hostport(hostport)
        if host:
            _check_host(host, what, quote=False)
        _check_port(port, what)
    return dsn


def _blocked_by_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a directory, if any."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def check_file_path(path: Path, *, what: str) -> Path:
    """A file the service creates or opens: not a directory, and no file where a folder of
    its path must be."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory; {what} must be a file path "
                         f"(e.g. {path / 'candles.sqlite'})")
    blocked = _blocked_by_file(path)
    if blocked is not None:
        raise ValueError(f"{blocked} is a file, so {path} cannot be created")
    return path


def check_dir_path(path: Path, *, what: str) -> Path:
    """A directory the service creates or uses: not an existing file, nor under one."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; {what} must be a directory")
    blocked = _blocked_by_file(path)
    if blocked is not None:
        raise ValueError(f"{blocked} is a file, so {path} cannot be created")
    return path
