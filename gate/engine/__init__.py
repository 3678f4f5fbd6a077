"""The engine: one run against one box, every phase inside one always-restore."""
