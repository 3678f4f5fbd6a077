"""Real helpers for testing gate and stacks gated by it (a throwaway loopback sshd, and
a scripted Target double for unit tests: gate/testing/double.py)."""
