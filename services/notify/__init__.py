"""The notify service: not built yet (see the open issues)."""
