"""Hosts on separate network stacks for tests: one Linux network namespace per host, each
with its own IP on a bridge that this object creates, and DNS names for all of them.

    with Hosts(["org1", "org2"]) as hosts:
        hosts.run("org1", ["chain", ...])       # runs inside org1's namespace
        hosts.link("org2", up=False)            # org2's cable pulled

Names resolve through /etc/netns/<namespace>/hosts, which `ip netns exec` bind-mounts over
/etc/hosts for the command it runs only (in that command's own mount namespace, gone with
it). Everything is removed on exit: processes the caller started must be stopped first
(`ip netns del` of a namespace with a live process leaves it until that process ends).
Every name carries a per-run tag, so parallel runs on one machine do not collide.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

NETNS_ETC = Path("/etc/netns")
DOMAIN = "chain.test"  # RFC 6761: .test is reserved for testing, never resolves elsewhere


class NetnsUnavailable(Exception):
    """Namespaces cannot be made here; the message is the reason to skip."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def check_available() -> None:
    """NetnsUnavailable with the reason unless this process can create namespaces."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("needs root to create network namespaces, veths and a bridge")
    if shutil.which("ip") is None:
        raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
    probe = f"chprobe{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        raise NetnsUnavailable(f"`ip netns add` failed: {made.stderr.strip()}")
    _ip("netns", "del", probe, check=False)


class Hosts:
    def __init__(self, names: list[str]) -> None:
        if len(names) > 50:
            raise ValueError("at most 50 hosts")
        self.tag = secrets.token_hex(3)  # 6 hex: interface names stay under 15 bytes
        self.names = list(names)
        self.bridge = f"chb{self.tag}"
        self.netns = {name: f"chn{self.tag}{i}" for i, name in enumerate(names)}
        self._veth = {name: f"chv{self.tag}{i}" for i, name in enumerate(names)}
        third = int(self.tag[:2], 16)  # a /24 of 10.233.0.0/16 picked per run
        self.ip = {name: f"10.233.{third}.{10 + i}" for i, name in enumerate(names)}
        self._made_etc = False
        self._created: list[str] = []

    def fqdn(self, name: str) -> str:
        return f"{name}.{DOMAIN}"

    def __enter__(self) -> Hosts:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._created.append("bridge")
        _ip("link", "set", self.bridge, "up")
        hosts_text = "127.0.0.1 localhost\n" + "".join(
            f"{self.ip[n]} {self.fqdn(n)}\n" for n in self.names
        )
        if not NETNS_ETC.exists():
            NETNS_ETC.mkdir()
            self._made_etc = True
        for name in self.names:
            ns, host_end, inner = self.netns[name], self._veth[name], f"eth{self.tag}"
            _ip("netns", "add", ns)
            self._created.append(ns)
            _ip("link", "add", host_end, "type", "veth", "peer", "name", inner, "netns", ns)
            _ip("link", "set", host_end, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.ip[name]}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            etc = NETNS_ETC / ns
            etc.mkdir(exist_ok=True)
            (etc / "hosts").write_text(hosts_text)

    def command(self, name: str, argv: list[str]) -> list[str]:
        """argv run inside `name`'s namespace (ip netns exec execs it: same pid)."""
        return ["ip", "netns", "exec", self.netns[name], *argv]

    def run(self, name: str, argv: list[str], timeout_s: float = 60.0) -> str:
        proc = subprocess.run(
            self.command(name, argv), capture_output=True, text=True, timeout=timeout_s
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"on {name}: {' '.join(argv)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc.stdout

    def link(self, name: str, *, up: bool) -> None:
        """Plug or pull `name`'s cable (its veth's host end: the inside sees no carrier)."""
        _ip("link", "set", self._veth[name], "up" if up else "down")

    def close(self) -> None:
        for name in self.names:
            ns = self.netns[name]
            if ns in self._created:
                # The pair first: a namespace's own links go away asynchronously after
                # `netns del` (the kernel's netns cleanup runs later), so a check right
                # after would still see them.
                _ip("link", "del", self._veth[name], check=False)
                _ip("netns", "del", ns, check=False)
            shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        if "bridge" in self._created:
            _ip("link", "del", self.bridge, check=False)
        if self._made_etc:
            try:
                NETNS_ETC.rmdir()  # only if empty: another run may be using it
            except OSError:
                pass
        self._created = []

    def leftovers(self) -> list[str]:
        """Namespaces, links or files of this run still present (for the test's own check)."""
        found = []
        listed = _ip("netns", "list", check=False).stdout
        found += [ns for ns in self.netns.values() if ns in listed]
        links = _ip("-o", "link", "show", check=False).stdout
        names = (self.bridge, *self._veth.values())
        found += [x for x in names if f" {x}:" in links or f" {x}@" in links]
        found += [str(NETNS_ETC / ns) for ns in self.netns.values() if (NETNS_ETC / ns).exists()]
        return found
