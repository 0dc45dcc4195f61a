"""Operator and developer scripts: run, migrate, seed."""

import warnings

# eventlet announces on import that it is in maintenance mode; nameko 2.x is
# built on it, and the notice would only clutter the runner's output.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
