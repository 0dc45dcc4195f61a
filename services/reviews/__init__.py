"""The reviews service: not built yet (see the open issues)."""
