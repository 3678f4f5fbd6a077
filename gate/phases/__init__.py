"""The phases of a run, one module each, and which modes run which."""
