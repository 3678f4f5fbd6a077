"""Real helpers for testing gate and stacks gated by it (a throwaway loopback sshd)."""
