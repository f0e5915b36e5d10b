"""A TRL user's own code, written the way TRL's documentation and open-r1 write it (not rlft's style)."""
