"""`make demo`: the product shown end to end on this machine, with nothing to configure."""
