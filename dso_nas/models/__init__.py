"""The search space, derivation, the architecture file and the derived network."""
