"""Job networks, joined to jobs through the "networks" attachment.

What a job gets, by the network it names (`""` = the agent's `--default-network`, `bridge`):

- `bridge`: eth0 with an address from the bridge pool (a free /16 chosen once, or
  `--bridge-cidr`), default route through the host, outbound traffic masqueraded. Jobs on
  `bridge` reach each other (by address, and by job name through /etc/hosts), as on Docker's
  default bridge; a job that must not be reachable by other jobs asks for `isolated`.
- `isolated`: like `bridge` for outbound traffic, but no job-to-job traffic at all (bridge
  port isolation, plus a forward drop rule).
- `none`: loopback only.
- a user network (CreateNetwork): peers reach each other by address and by job name, and
  nothing else: no route out of the host, no NAT.

On every network a job cannot open connections to the host itself (its gateway address
included: the agent provides no DNS on it) and networks never reach each other.

Layout: `plan` (pure: names, CIDR rules, address pools, hosts files), `rules` (pure: the
nftables ruleset), `host` (the one module that changes the host), `manager` (state on disk,
the attachment, the service's engine). The job's end of the veth is set up by
`node_agent.isolation.netsetup`, in the supervisor and the job.
"""
