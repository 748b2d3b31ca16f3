"""Joblet on Kubernetes: shared library (API stubs, client, CLI)."""
