"""Where a webhook may be sent: the SSRF guard (pure: no database, no I/O but DNS).

A webhook URL written in a blueprint is sent from inside the deployment, so
without a guard it could reach what only the server can reach: the cloud
metadata service (``169.254.169.254``), the database, an admin page on
``localhost``. The rules, applied when a webhook is delivered (every attempt,
after resolving the host) and, for what can be seen in the text, by
``formflow check``:

* the scheme is ``http`` or ``https``; the URL has a host and a valid port;
* every address the host resolves to must be *public*: refused are loopback
  (``127.0.0.0/8``, ``::1``), private (``10/8``, ``172.16/12``,
  ``192.168/16``, ``fc00::/7``), shared (``100.64/10``), link-local
  (``169.254/16``, ``fe80::/10``), multicast, reserved, unspecified
  (``0.0.0.0``, ``::``) and every other non-global range; IPv6 addresses that
  carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, Teredo, NAT64
  ``64:ff9b::/96``) are judged by that IPv4 address too. One refused address
  refuses the host (a DNS answer may not mix a public and a private address);
* ``allow_private`` (setting ``FORMFLOW_WEBHOOK_ALLOW_PRIVATE``) also allows
  loopback, private and shared addresses (a receiver on the same network) —
  never link-local, multicast, reserved or unspecified ones;
* ``allow_hosts`` (setting ``FORMFLOW_WEBHOOK_ALLOW_HOSTS``) names hosts (as
  written in the URL, case-insensitive, optionally ``host:port``) that are
  allowed whatever they resolve to: the explicit way to reach one internal
  receiver.

The connection then goes to the address that was checked (no second DNS
lookup an attacker could answer differently), and redirects are never followed
(:mod:`engine.webhooks`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from engine.errors import FormflowError
from engine.i18n import T, Text

__all__ = [
    "NAT64_PREFIX",
    "Resolver",
    "Target",
    "UrlRefused",
    "address_problem",
    "check_url",
    "embedded_ipv4",
    "literal_problem",
    "parse_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
SCHEMES = ("http", "https")
#: Host names that always mean this machine or its network.
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")

#: ``getaddrinfo``-like: (host, port) -> the addresses it resolves to.
Resolver = Callable[[str, int], Sequence[str]]


class UrlRefused(FormflowError):
    """A webhook URL the guard refuses (a bad scheme or a non-public address)."""

    http_status = 422
    default_message = Text(zh="不允许的 webhook 地址", en="This webhook address is not allowed")


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for."""

    url: str
    scheme: str
    host: str  # as written (for the Host header and TLS server name)
    port: int
    path: str  # path and query, at least "/"
    address: str  # the checked IP address to connect to


def parse_url(url: str) -> SplitResult:
    """``urlsplit`` of ``url``, refusing what is not an http(s) URL with a host and port."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise UrlRefused(T(f"网址无效：{exc}", f"not a valid URL: {exc}")) from None
    if parts.scheme.lower() not in SCHEMES:
        raise UrlRefused(
            T(
                f"只能调用 http 或 https 地址，不能用 {parts.scheme or '（无）'}",
                f"only http and https URLs are called, not {parts.scheme or '(none)'!r}",
            )
        )
    if not parts.hostname:
        raise UrlRefused(T("网址缺少主机名", "the URL has no host"))
    return parts


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


_SHARED = ipaddress.ip_network("100.64.0.0/10")


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not public (``None`` when it is): the most telling reason."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "private"
    if ip.is_private:
        # Python counts some reserved/documentation blocks as private; they are refused
        # either way, but allow_private must only open the real private ranges.
        return "private" if _really_private(ip) else "reserved"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


_PRIVATE_NETS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def _really_private(ip: IPAddress) -> bool:
    return any(ip.version == net.version and ip in net for net in _PRIVATE_NETS)


_ALLOWED_WITH_PRIVATE = frozenset({"loopback", "private"})

_KIND_TEXT = {
    "unspecified": ("未指定地址", "an unspecified address"),
    "loopback": ("本机回环地址", "a loopback address"),
    "link-local": (
        "链路本地地址（如云主机元数据服务 169.254.169.254）",
        "a link-local address (such as the cloud metadata service 169.254.169.254)",
    ),
    "multicast": ("组播地址", "a multicast address"),
    "private": ("内网地址", "a private address"),
    "reserved": ("保留地址", "a reserved address"),
}


def address_problem(address: str, *, allow_private: bool = False) -> Text | None:
    """Why a webhook may not go to ``address`` (None: it may)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return T(f"无效的地址 {address}", f"not an IP address: {address}")
    inner = embedded_ipv4(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        kinds = [_kind(ip.ipv4_mapped)]  # ::ffff:a.b.c.d is just a way to write a.b.c.d
    else:
        kinds = [_kind(ip)] + ([_kind(inner)] if inner is not None else [])
    for kind in kinds:
        if kind is None or (allow_private and kind in _ALLOWED_WITH_PRIVATE):
            continue
        zh, en = _KIND_TEXT[kind]
        return T(f"{address} 是{zh}", f"{address} is {en}")
    return None


def _host_allowed(parts: SplitResult, allow_hosts: Iterable[str]) -> bool:
    host = (parts.hostname or "").lower()
    port = parts.port
    for entry in allow_hosts:
        wanted = entry.strip().lower()
        if not wanted:
            continue
        if wanted == host or (port is not None and wanted == f"{host}:{port}"):
            return True
    return False


def _default_resolver(host: str, port: int) -> Sequence[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _refused(url: str, reason: Text, hint: Text | None = None) -> UrlRefused:
    more_zh = f"；{hint.zh}" if hint else ""
    more_en = f"; {hint.en}" if hint else ""
    return UrlRefused(
        T(
            f"拒绝调用 {url}：{reason.zh}{more_zh}",
            f"refused to call {url}: {reason.en}{more_en}",
        )
    )


_ALLOW_HINT = T(
    "确需调用内网地址时，在设置 FORMFLOW_WEBHOOK_ALLOW_HOSTS 中写明该主机",
    "to reach an internal receiver, name its host in the FORMFLOW_WEBHOOK_ALLOW_HOSTS setting",
)


def check_url(
    url: str,
    *,
    allow_hosts: Iterable[str] = (),
    allow_private: bool = False,
    resolve: Resolver | None = None,
) -> Target:
    """Check ``url`` for a delivery now: resolve its host and vet every address.

    Returns where to connect; raises :class:`UrlRefused` with the reason.
    """
    parts = parse_url(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        addresses = list((resolve or _default_resolver)(host, port))
    except (OSError, UnicodeError) as exc:
        reason = T(f"无法解析主机 {host}（{exc}）", f"cannot resolve {host} ({exc})")
        raise _refused(url, reason) from None
    if not addresses:
        raise _refused(url, T(f"主机 {host} 没有地址", f"{host} has no address"))
    if not _host_allowed(parts, allow_hosts):
        for address in addresses:
            problem = address_problem(address, allow_private=allow_private)
            if problem is not None:
                raise _refused(url, problem, _ALLOW_HINT)
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        address=addresses[0].split("%", 1)[0],
    )


def literal_problem(url: str) -> tuple[str, Text] | None:
    """What ``formflow check`` can tell from the text alone: (severity, message) or None.

    A bad URL, and a literal address that is never allowed (link-local such as
    169.254.169.254, multicast, reserved, unspecified) are errors; a literal
    loopback or private address or a local host name is a warning (allowed only
    by the runtime settings).
    """
    try:
        parts = parse_url(url)
    except UrlRefused as exc:
        return "error", exc.text
    host = (parts.hostname or "").lower()
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if host in LOCAL_NAMES or host.endswith(LOCAL_SUFFIXES):
            return "warning", T(
                f"{host} 是本机或内网主机名，投递时会被拒绝，除非设置允许",
                f"{host} names this machine or the local network: delivery is refused "
                "unless the settings allow it",
            )
        return None
    problem = address_problem(str(ip))
    if problem is None:
        return None
    if address_problem(str(ip), allow_private=True) is None:
        return "warning", T(
            f"{problem.zh}，投递时会被拒绝，除非设置允许",
            f"{problem.en}: delivery is refused unless the settings allow it",
        )
    return "error", problem
