"""Kopf handlers: thin glue between watch events and the pure planners."""
