"""The OpenAPI document and the docs page."""

from __future__ import annotations

from gateway.http import ApiRoute
from gateway.openapi import _routes, openapi_path
from gateway.service import GatewayService

EXPECTED = {
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/password"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-reset/confirm"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/organisations"),
    ("get", "/api/v1/organisations/{org_id}"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users/{user_id}"),
    ("patch", "/api/v1/users/{user_id}"),
    ("post", "/api/v1/users/{user_id}/deactivate"),
    ("post", "/api/v1/users/{user_id}/reactivate"),
    ("post", "/api/v1/users/import"),
    ("get", "/api/v1/roles"),
    ("post", "/api/v1/users/{user_id}/revoke-sessions"),
    ("post", "/api/v1/users/{user_id}/invitation"),
    ("get", "/health"),
    ("get", "/ready"),
}


def test_openapi_lists_every_route_with_schemas(client):
    """openapi.json is OpenAPI 3 and documents every route of the service."""
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    operations = {
        (method, path) for path, item in doc["paths"].items() for method in item
    }
    assert EXPECTED <= operations
    declared = {
        (route.method.lower(), openapi_path(route.url))
        for _, _, route in _routes(GatewayService)
    }
    assert declared == operations
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["cookie"] == {"type": "apiKey", "in": "cookie", "name": "cpd_access"}
    assert {"Problem", "Login", "UserCreate", "Token", "UserPage"} <= set(
        doc["components"]["schemas"]
    )
    create = doc["paths"]["/api/v1/users"]["post"]
    body_schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/UserCreate"}
    assert "201" in create["responses"] and "422" in create["responses"]
    problem = create["responses"]["default"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert (
        create["security"]
        and doc["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    )
    limit = next(
        p
        for p in doc["paths"]["/api/v1/users"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == 100


def test_every_route_has_a_docstring():
    """Each route's docstring becomes its summary."""
    for name, func, route in _routes(GatewayService):
        assert isinstance(route, ApiRoute)
        assert (func.__doc__ or "").strip(), name


def test_docs_page_renders_from_local_assets(client):
    """The docs page loads Swagger UI from the gateway itself."""
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    init = client.get("/api/v1/docs/assets/init.js")
    assert "/api/v1/openapi.json" in init.text
    assert client.get("/api/v1/docs/assets/..%2f..%2fsecret").status_code == 404
