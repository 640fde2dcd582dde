"""A network namespace to run a server in, behind a veth pair, with loss we control.

The server listens on the namespace's side of the veth (not loopback), so media really crosses a
network interface; an nftables rule inside the namespace drops a share of the UDP it sends
(WebRTC media) while TCP (signaling and the WebSocket fallback) passes untouched. The kernel here
has no netem; nftables' `numgen random` is the verified way to get random loss.
"""

import itertools
import os
import subprocess
from dataclasses import dataclass

_ids = itertools.count()


def _run(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, input=stdin, text=True, check=True, capture_output=True)


@dataclass
class Namespace:
    name: str
    host_side: str  # the veth outside the namespace
    host_ip: str
    ip: str  # the namespace's address: run servers on it

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def set_udp_loss(self, percent: int) -> None:
        """Drop `percent`% of the UDP packets leaving the namespace, at random."""
        rule = f"meta l4proto udp numgen random mod 100 < {percent} counter drop" if percent else ""
        ruleset = (
            "table inet impair\ndelete table inet impair\n"
            "table inet impair {\n chain out {\n"
            "  type filter hook output priority 0; policy accept;\n"
            f"  {rule}\n }}\n}}\n"
        )
        _run(*self.exec_prefix(), "nft", "-f", "-", stdin=ruleset)

    def dropped_packets(self) -> int:
        out = subprocess.run(
            [*self.exec_prefix(), "nft", "list", "table", "inet", "impair"],
            text=True,
            capture_output=True,
            check=True,
        ).stdout
        marker = "counter packets "
        return int(out.split(marker)[1].split()[0]) if marker in out else 0


def create() -> Namespace:
    n = next(_ids) % 200 + os.getpid() % 50 * 4
    subnet = f"10.{200 + n // 250}.{n % 250}"
    ns = Namespace(
        f"vrtc-{os.getpid()}-{n}", f"vrtc{os.getpid() % 10000}h{n}", f"{subnet}.1", f"{subnet}.2"
    )
    inner = ns.host_side.replace("h", "n", 1)
    _run("ip", "netns", "add", ns.name)
    _run("ip", "link", "add", ns.host_side, "type", "veth", "peer", "name", inner)
    _run("ip", "link", "set", inner, "netns", ns.name)
    _run("ip", "addr", "add", f"{ns.host_ip}/30", "dev", ns.host_side)
    _run("ip", "link", "set", ns.host_side, "up")
    _run(*ns.exec_prefix(), "ip", "addr", "add", f"{ns.ip}/30", "dev", inner)
    _run(*ns.exec_prefix(), "ip", "link", "set", inner, "up")
    _run(*ns.exec_prefix(), "ip", "link", "set", "lo", "up")
    ns.set_udp_loss(0)
    return ns


def delete(ns: Namespace) -> None:
    subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
    subprocess.run(["ip", "link", "del", ns.host_side], capture_output=True)
