"""nameko's pytest plugin expects eventlet's monkey patch before the session
starts; like the plumbing tests, this applies it here (eventlet's import-time
deprecation warning starts with a newline, which the pyproject filters do not
match, so it is silenced for the import).
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import eventlet

eventlet.monkey_patch()
