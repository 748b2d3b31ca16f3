"""The agent's packet filter, generated purely from its set of networks.

One nftables table per agent (`inet joblet_<hash of node id>`), replaced whole and
atomically on every change (`nft -f` applies a file as one transaction), so a network's
rules appear and disappear with it and nothing else on the host is touched. Policy:

- forward: traffic within one bridge passes on `bridge` and user networks (seen here when
  the kernel hands bridged frames to netfilter) and is dropped on `isolated`; `bridge`
  and `isolated` jobs may open connections out of the host (not into another job bridge)
  and get the replies; everything else to or from a job bridge is dropped, so different
  networks never reach each other and user networks reach nothing outside;
- input: a job may not open connections to the host itself (any of its addresses, the
  gateway included); replies to the host's own connections pass;
- postrouting: outbound traffic of `bridge` and `isolated` is masqueraded.

The chains' policy is accept: traffic not involving our bridges is none of our business.
"""

from __future__ import annotations

from collections.abc import Iterable

from node_agent.networks.plan import Network

FAMILY = "inet"


def _set(names: Iterable[str]) -> str:
    items = sorted(set(names))
    return "{ " + ", ".join(f'"{n}"' for n in items) + " }"


def ruleset(table: str, networks: Iterable[Network]) -> str:
    """The whole `nft -f` script: (re)create the table with exactly these networks' rules.
    With no networks the script only deletes the table."""
    nets = sorted(networks, key=lambda n: n.name)
    head = f"table {FAMILY} {table}\ndelete table {FAMILY} {table}\n"
    if not nets:
        return head
    all_br = _set(n.bridge for n in nets)
    nat = [n for n in nets if n.nat]
    fwd: list[str] = []
    for n in nets:
        verdict = "accept" if n.peers else "drop"
        fwd.append(f'iifname "{n.bridge}" oifname "{n.bridge}" {verdict}')
    if nat:
        nat_br = _set(n.bridge for n in nat)
        fwd.append(f"oifname {nat_br} ct state established,related accept")
        fwd.append(f"iifname {nat_br} oifname != {all_br} accept")
    fwd.append(f"iifname {all_br} drop")
    fwd.append(f"oifname {all_br} drop")
    inp = [
        f"iifname {all_br} ct state established,related accept",
        f"iifname {all_br} drop",
    ]
    post = [f'ip saddr {n.cidr} oifname != "{n.bridge}" masquerade' for n in nat]
    lines = [head.rstrip("\n"), f"table {FAMILY} {table} {{"]
    lines += _chain("forward", "type filter hook forward priority filter; policy accept;", fwd)
    lines += _chain("input", "type filter hook input priority filter; policy accept;", inp)
    if post:
        lines += _chain(
            "postrouting", "type nat hook postrouting priority srcnat; policy accept;", post
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _chain(name: str, hook: str, rules: list[str]) -> list[str]:
    return [f"\tchain {name} {{", f"\t\t{hook}", *(f"\t\t{r}" for r in rules), "\t}"]


def delete_script(table: str) -> str:
    return f"table {FAMILY} {table}\ndelete table {FAMILY} {table}\n"
