"""On-disk formats shared by the agent and the supervisors that outlive it: where each
file of a job lives and how output segments are written and read."""
