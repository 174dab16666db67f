"""Network namespaces for the lab: the demo's endpoint network, and what the test lab shares.

Everything lives in namespaces and veth pairs this process creates; the host's own configuration
is never touched, except for one `unreachable` route for the whole lab range (198.18.0.0/15, the
benchmarking range of RFC 2544) so lab traffic can never follow the default route off the
machine. Names carry the creating pid (`nmt<pid>...` for the tests, `nmd<pid>...` for the demo),
so the leftovers of a crashed run are recognised and removed by whoever starts next.

`EndpointNetwork` is the demo's: one namespace holding every endpoint address, one veth link per
district to the root namespace (so cutting a district's uplink is a real link going down), kernel
echo replies off, and one `netmon_lab.responder` answering every address with the loss and delay
it is told at runtime. It must not import the service: the demo hands its addresses to the
inventory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from netmon_lab.responder import Impairment

log = logging.getLogger(__name__)

LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
GUARD_METRIC = "4242"
TEST_PREFIX, DEMO_PREFIX = "nmt", "nmd"
_NAME = re.compile(rf"^(?:{TEST_PREFIX}|{DEMO_PREFIX})(\d+)[a-z]")
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
IP_TIMEOUT = 10.0


class LabUnavailableError(RuntimeError):
    pass


def ip(
    *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS` (blocking: call it from a thread when on the event loop)."""
    return subprocess.run(
        ["ip", *args], check=check, capture_output=True, text=True, timeout=IP_TIMEOUT, input=stdin
    )


def ip_batch(commands: Sequence[str], *, namespace: str | None = None) -> None:
    """Run many `ip` commands in one process (`ip -batch`); the first failure raises."""
    where = ["-n", namespace] if namespace else []
    result = ip(*where, "-batch", "-", check=False, stdin="\n".join(commands) + "\n")
    if result.returncode != 0:
        raise LabUnavailableError(f"ip -batch failed: {result.stderr.strip()}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lab_namespaces() -> list[tuple[str, int]]:
    found = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAME.match(name)
        if match:
            found.append((name, int(match.group(1))))
    return found


def remove_stale() -> None:
    """Delete namespaces and links left by lab runs (tests or demo) whose process is gone."""
    for name, pid in _lab_namespaces():
        if not pid_alive(pid):
            ip("netns", "del", name, check=False)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            match = _NAME.match(name)
            if match and not pid_alive(int(match.group(1))):
                ip("link", "del", name, check=False)


def guard_lab_range() -> bool:
    """Make lab addresses unroutable beyond this machine; True if this call added the route.

    The lab's own, more specific routes win while they exist; if a link or route goes away,
    packets for the lab range hit this route and fail here instead of following the default
    route off the machine.
    """
    result = ip("route", "add", "unreachable", str(LAB_RANGE), "metric", GUARD_METRIC, check=False)
    if result.returncode == 0:
        return True
    if "File exists" in result.stderr:
        return False
    raise LabUnavailableError(f"cannot add the lab's guard route: {result.stderr.strip()}")


def drop_guard_if_unused() -> None:
    """Remove the guard route again when no lab of any live process is left to need it."""
    if any(pid_alive(pid) for _, pid in _lab_namespaces()):
        return
    ip("route", "del", "unreachable", str(LAB_RANGE), "metric", GUARD_METRIC, check=False)


def _capabilities() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def unavailable_reason() -> str | None:
    """Why this process cannot build a namespace lab, or None when it can (checked, not
    assumed from the user id)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    capabilities = _capabilities()
    missing = [
        name
        for name, bit in (("CAP_NET_ADMIN", CAP_NET_ADMIN), ("CAP_SYS_ADMIN", CAP_SYS_ADMIN))
        if not capabilities & (1 << bit)
    ]
    if missing:
        advice = (
            "it runs as root without them (a restricted container?)"
            if os.geteuid() == 0
            else "run it as root, or with sudo"
        )
        return f"building network namespaces needs {' and '.join(missing)}: {advice}"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def check_available() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise LabUnavailableError(reason)
    probe = f"{TEST_PREFIX}{os.getpid()}h99probe"
    result = ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        raise LabUnavailableError(f"cannot create a network namespace: {result.stderr.strip()}")
    ip("netns", "del", probe, check=False)


def _used_lab_networks() -> list[ipaddress.IPv4Network]:
    """Every address block and route of the root namespace that overlaps the lab range."""
    used: list[ipaddress.IPv4Network] = []
    for line in ip("-4", "-o", "addr", "show", check=False).stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    for line in ip("-4", "route", "show", check=False).stdout.splitlines():
        fields = line.split()
        if not fields:
            continue
        where = fields[1] if fields[0] in ("unreachable", "blackhole", "prohibit") else fields[0]
        with contextlib.suppress(ValueError):
            network = ipaddress.IPv4Network(where)  # "default" is not a network: skipped
            if network != LAB_RANGE:
                used.append(network)
    return [network for network in used if network.overlaps(LAB_RANGE)]


def free_block(prefixlen: int) -> ipaddress.IPv4Network:
    """A random block of the lab range that no address or route here overlaps."""
    used = _used_lab_networks()
    size = 2 ** (32 - prefixlen)
    for _ in range(200):
        start = LAB_RANGE.network_address + size * random.randrange(LAB_RANGE.num_addresses // size)
        block = ipaddress.IPv4Network(f"{start}/{prefixlen}")
        if not any(block.overlaps(network) for network in used):
            return block
    raise LabUnavailableError(f"no free /{prefixlen} left in {LAB_RANGE}")


@dataclass(frozen=True)
class DistrictLink:
    """One district's link between the root namespace and the endpoint namespace."""

    district: str
    link: str  # the root namespace's end
    peer: str  # the endpoint namespace's end
    network: ipaddress.IPv4Network
    gateway: str  # address of the root end: where pings come from
    endpoints: tuple[tuple[str, str], ...]  # (endpoint id, address)


def _size_for(count: int) -> int:
    """Prefix length of the smallest subnet holding `count` hosts plus the gateway."""
    prefixlen = 30
    while 2 ** (32 - prefixlen) - 3 < count:
        prefixlen -= 1
    return prefixlen


def interface_name(text: str, taken: set[str]) -> str:
    """A Linux interface name (15 bytes, [a-z0-9-]) for a district, unique within `taken`."""
    base = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:15] or "district"
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base[: 15 - len(str(number)) - 1]}-{number}"
    taken.add(name)
    return name


def plan_links(
    districts: Mapping[str, Sequence[str]],
) -> tuple[int, list[tuple[str, int, list[str]]]]:
    """Subnet sizes for districts -> (prefix length of the whole block, [(district, prefixlen,
    endpoints)] largest first, so packing them in order keeps every subnet aligned)."""
    sized = sorted(
        ((district, _size_for(len(ids)), list(ids)) for district, ids in districts.items()),
        key=lambda item: (item[1], item[0]),
    )
    total = sum(2 ** (32 - prefixlen) for _, prefixlen, _ in sized)
    block = 32
    while 2 ** (32 - block) < total:
        block -= 1
    return block, sized


def assign(
    block: ipaddress.IPv4Network,
    sized: list[tuple[str, int, list[str]]],
    *,
    link_prefix: str,
    slugs: Mapping[str, str],
) -> list[DistrictLink]:
    """Carve `block` into the districts' subnets: gateway first, then the endpoints in order."""
    links: list[DistrictLink] = []
    taken = {"lo"}  # the namespace's own loopback
    start = int(block.network_address)
    for number, (district, prefixlen, ids) in enumerate(sized):
        network = ipaddress.IPv4Network(f"{ipaddress.IPv4Address(start)}/{prefixlen}")
        start += network.num_addresses
        hosts = network.hosts()
        gateway = str(next(hosts))
        links.append(
            DistrictLink(
                district=district,
                link=f"{link_prefix}d{number}",
                peer=interface_name(slugs.get(district, district), taken),
                network=network,
                gateway=gateway,
                endpoints=tuple((endpoint, str(next(hosts))) for endpoint in ids),
            )
        )
    return links


class EndpointNetwork:
    """The demo's endpoints in a namespace of their own, answered by one controllable responder.

    `endpoints` maps each endpoint id to its district; `slugs` gives each district an ASCII
    name for its interface. After entering, `addresses` maps endpoint ids to lab addresses.
    """

    def __init__(self, *, endpoints: Mapping[str, str], slugs: Mapping[str, str]) -> None:
        self._endpoints = dict(endpoints)
        self._slugs = dict(slugs)
        prefix = f"{DEMO_PREFIX}{os.getpid()}"
        self.namespace = f"{prefix}lab"
        self._link_prefix = prefix
        self.links: dict[str, DistrictLink] = {}
        self.addresses: dict[str, str] = {}
        self._responder: asyncio.subprocess.Process | None = None
        self._added_guard = False
        self._lock = asyncio.Lock()
        self._cut: set[str] = set()
        self._block: ipaddress.IPv4Network | None = None

    @property
    def block(self) -> str:
        """The lab block the endpoint addresses come from."""
        return str(self._block)

    async def __aenter__(self) -> EndpointNetwork:
        try:
            await asyncio.to_thread(self._build)
            await self._start_responder()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()

    def _build(self) -> None:
        remove_stale()
        self._added_guard = guard_lab_range()
        districts: dict[str, list[str]] = {}
        for endpoint, district in self._endpoints.items():
            districts.setdefault(district, []).append(endpoint)
        prefixlen, sized = plan_links(districts)
        block = self._block = free_block(prefixlen)
        links = assign(block, sized, link_prefix=self._link_prefix, slugs=self._slugs)
        result = ip("netns", "add", self.namespace, check=False)
        if result.returncode != 0:
            raise LabUnavailableError(f"cannot create a network namespace: {result.stderr.strip()}")
        self.links = {link.district: link for link in links}  # registered: _close removes them
        root, inside = [], ["link set lo up"]
        for link in links:
            prefix = link.network.prefixlen
            root += [
                f"link add {link.link} type veth peer name {link.peer} netns {self.namespace}",
                f"addr add {link.gateway}/{prefix} dev {link.link}",
                f"link set {link.link} up",
            ]
            inside += [
                f"addr add {address}/{prefix} dev {link.peer}" for _, address in link.endpoints
            ]
            inside.append(f"link set {link.peer} up")
        ip_batch(root)
        ip_batch(inside, namespace=self.namespace)
        sysctl = subprocess.run(
            ["ip", "netns", "exec", self.namespace, "sysctl", "-qw",
             "net.ipv4.icmp_echo_ignore_all=1"],
            capture_output=True, text=True, timeout=IP_TIMEOUT, check=False,
        )  # fmt: skip
        if sysctl.returncode != 0:
            raise LabUnavailableError(
                f"cannot turn off kernel echo replies in the lab: {sysctl.stderr.strip()}"
            )
        self.addresses = {
            endpoint: address for link in links for endpoint, address in link.endpoints
        }

    async def _start_responder(self) -> None:
        self._responder = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.namespace,
            sys.executable, "-m", "netmon_lab.responder", "--control",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        line = await self._answer()
        if line != "ready":
            raise LabUnavailableError(f"the lab's ICMP responder did not start ({line!r})")

    async def _answer(self) -> str:
        assert self._responder is not None
        assert self._responder.stdout is not None
        try:
            async with asyncio.timeout(10):
                line = await self._responder.stdout.readline()
        except TimeoutError:
            return "no answer within 10 s"
        return line.decode().strip() or f"exited with {await self._responder.wait()}"

    async def impair(self, impairments: Mapping[str, Impairment]) -> None:
        """Replace the responder's per-address table (addresses absent answer normally)."""
        table = {address: impairment.to_json() for address, impairment in impairments.items()}
        async with self._lock:
            responder = self._responder
            if responder is None or responder.stdin is None or responder.returncode is not None:
                raise LabUnavailableError("the lab's ICMP responder is not running")
            responder.stdin.write(json.dumps({"impairments": table}).encode() + b"\n")
            async with asyncio.timeout(5):
                await responder.stdin.drain()
            answer = await self._answer()
        if answer != "ok":
            raise LabUnavailableError(f"the lab's ICMP responder refused the change: {answer}")

    async def cut(self, districts: set[str]) -> None:
        """Take the namespace end of these districts' links down, and every other one up."""
        async with self._lock:
            down, up = districts - self._cut, self._cut - districts
            commands = [f"link set {self.links[d].peer} down" for d in sorted(down)]
            commands += [f"link set {self.links[d].peer} up" for d in sorted(up)]
            if commands:
                await asyncio.to_thread(ip_batch, commands, namespace=self.namespace)
            self._cut = set(districts)

    async def _close(self) -> None:
        responder, self._responder = self._responder, None
        if responder is not None and responder.returncode is None:
            if responder.stdin is not None:
                responder.stdin.close()  # the responder stops when its stdin closes
            try:
                async with asyncio.timeout(3):
                    await responder.wait()
            except TimeoutError:
                responder.kill()
                await responder.wait()
        await asyncio.to_thread(self._teardown)

    def _teardown(self) -> None:
        if self.links:
            deletions = "".join(f"link del {link.link}\n" for link in self.links.values())
            ip("-force", "-batch", "-", check=False, stdin=deletions)
        ip("netns", "del", self.namespace, check=False)
        self.links = {}
        if self._added_guard:
            drop_guard_if_unused()
