"""The browsable API docs page: Swagger UI served by the gateway itself.

The Swagger UI assets come from the ``swagger-ui-bundle`` package, so the
page needs nothing from outside the gateway and can run under a strict
Content-Security-Policy (``'self'`` only, no inline script).
"""

from __future__ import annotations

import functools
from typing import Any

from werkzeug.wrappers import Response

DOCS_PATH = "/api/v1/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
SPEC_PATH = "/api/v1/openapi.json"

# Swagger UI runs its own inline styles; scripts come from this origin only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
)

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>CPD platform API</title>
  <link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{ASSETS_PATH}/swagger-ui-standalone-preset.js"></script>
  <script src="{ASSETS_PATH}/init.js"></script>
</body>
</html>
"""

INIT_JS = f"""window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "{SPEC_PATH}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  }});
}};
"""

_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui-standalone-preset.js": "application/javascript",
}


def docs_page() -> Response:
    response = Response(PAGE, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    return response


@functools.lru_cache(maxsize=len(_ASSETS))
def _asset_bytes(name: str) -> bytes | None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return (swagger_ui_path / name).read_bytes()


def asset(name: str) -> Response | None:
    """One Swagger UI file, or None if it is not one of ours."""
    if name == "init.js":
        data: Any = INIT_JS
        mimetype = "application/javascript"
    elif name in _ASSETS:
        data = _asset_bytes(name)
        mimetype = _ASSETS[name]
        if data is None:
            return None
    else:
        return None
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
