"""The node registry: the agent publishing itself as a JobletNode and renewing a heartbeat Lease,
so the operator knows where agents are, what they offer, and which are alive."""
