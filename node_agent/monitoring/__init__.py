"""Host monitoring: what the node is and how busy it is, read from the real host."""
