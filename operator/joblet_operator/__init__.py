"""The Kopf operator reconciling joblet.io custom resources onto node agents."""
