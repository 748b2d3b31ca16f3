"""Volumes: named storage on the node that jobs mount at /volumes/NAME and that outlives them."""
