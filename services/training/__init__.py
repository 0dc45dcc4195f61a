"""The training service: not built yet (see the open issues)."""
