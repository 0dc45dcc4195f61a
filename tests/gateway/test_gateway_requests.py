"""Request ids, input validation and problem documents."""

from __future__ import annotations

import random
import uuid

import pytest
from gateway_support import calls_named, make_token

AUTH = {"Authorization": f"Bearer {make_token()}"}
NEW_USER = {
    "username": "grace",
    "given_name": "Grace",
    "family_name": "Hopper",
    "email": "grace@school.example",
    "org_id": "org-school",
    "roles": [{"role": "staff", "org_id": "org-school"}],
}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail", "errors", "request_id"} <= set(body)
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_request_id_is_accepted_and_returned(client):
    """A well-formed X-Request-ID comes back unchanged."""
    response = client.get("/health", headers={"X-Request-ID": "abc-123_x.y"})
    assert response.headers["X-Request-ID"] == "abc-123_x.y"


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "semi;colon"])
def test_unsafe_or_missing_request_id_is_replaced_by_a_uuid(client, given):
    """A missing or unsafe X-Request-ID is replaced by a fresh UUID."""
    headers = {} if given is None else {"X-Request-ID": given}
    response = client.get("/health", headers=headers)
    assert str(uuid.UUID(response.headers["X-Request-ID"]))


def test_request_id_is_on_errors_and_unknown_routes(client):
    """404 and 405 are problem documents carrying the request id."""
    body = assert_problem(
        client.get("/api/v1/nothing", headers={"X-Request-ID": "r-1"}), 404, "NOT_FOUND"
    )
    assert body["request_id"] == "r-1"
    response = client.request("DELETE", "/api/v1/roles")
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


def test_unknown_field_is_422_with_field_errors(client):
    """An unknown field is refused with its name in the field errors."""
    response = client.post(
        "/api/v1/users", json=dict(NEW_USER, is_superuser=True), headers=AUTH
    )
    body = assert_problem(response, 422, "VALIDATION_FAILED")
    assert "is_superuser" in body["errors"]
    assert not calls_named("create_user")


def test_missing_and_bad_fields_are_422(client):
    """Missing required fields and bad values are listed field by field."""
    response = client.post(
        "/api/v1/users", json={"username": "x", "email": "nope"}, headers=AUTH
    )
    body = assert_problem(response, 422, "VALIDATION_FAILED")
    assert {"username", "email", "given_name", "family_name", "org_id"} <= set(
        body["errors"]
    )


def test_valid_user_is_created_with_201(client):
    """A valid body reaches auth and is answered 201."""
    response = client.post("/api/v1/users", json=NEW_USER, headers=AUTH)
    assert response.status_code == 201
    args, _ = calls_named("create_user")[-1]
    assert args[0]["username"] == "grace"


def test_service_errors_keep_their_status_and_code(client):
    """A PlatformError from the service keeps its status and code."""
    response = client.post(
        "/api/v1/users", json=dict(NEW_USER, username="taken"), headers=AUTH
    )
    assert_problem(response, 409, "USERNAME_TAKEN")
    response = client.post(
        "/api/v1/users/import",
        json={"org_id": "org-school", "csv": "username\nbad\n"},
        headers=AUTH,
    )
    body = assert_problem(response, 422, "IMPORT_INVALID")
    assert "row 2" in body["errors"]


def test_body_over_one_megabyte_is_413(client):
    """A body over 1 MB is refused with 413 before it is parsed."""
    big = b'{"login": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    response = client.post(
        "/api/v1/auth/password-reset",
        data=big,
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert not calls_named("request_password_reset")


def test_chunked_body_over_one_megabyte_is_413(client):
    """A chunked body without Content-Length is cut off at 1 MB too."""

    def chunks():
        for _ in range(20):
            yield b"a" * 65536

    response = client.post(
        "/api/v1/auth/password-reset",
        data=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


def test_limit_over_100_is_422(client):
    """List pages of more than 100 are refused."""
    response = client.get("/api/v1/users?limit=101", headers=AUTH)
    body = assert_problem(response, 422, "VALIDATION_FAILED")
    assert "limit" in body["errors"]
    response = client.get("/api/v1/users?limit=100&offset=5", headers=AUTH)
    assert response.status_code == 200
    args, _ = calls_named("list_users")[-1]
    assert args[-2:] == (5, 100)


def test_malformed_json_is_400(client):
    """Broken JSON, bad UTF-8 and NaN are 400, not 500."""
    for data in (b'{"login": ', b'{"login": "\xff\xfe"}', b'{"login": NaN}'):
        response = client.post(
            "/api/v1/auth/password-reset",
            data=data,
            headers={"Content-Type": "application/json"},
        )
        assert_problem(response, 400, "MALFORMED_REQUEST")


def test_wrong_content_type_is_415(client):
    """A CSV or form body where JSON is expected is 415."""
    response = client.post(
        "/api/v1/users/import",
        data="username\nada\n",
        headers=dict(AUTH, **{"Content-Type": "text/csv"}),
    )
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_that_is_not_an_object_is_422(client):
    """A JSON array or string where an object is expected is 422."""
    response = client.post("/api/v1/auth/password-reset", json=[1, 2])
    assert_problem(response, 422, "VALIDATION_FAILED")


def test_unexpected_service_failure_is_502(client):
    """An unexpected exception inside a service is 502 UPSTREAM_ERROR."""
    response = client.get("/api/v1/users/boom", headers=AUTH)
    assert_problem(response, 502, "UPSTREAM_ERROR")


JUNK_PATHS = [
    "/api/v1/users/%ff%fe",
    "/api/v1/users/" + "a" * 3000,
    "/api/v1/../../etc/passwd",
    "/api/v1/users/user-1/../../roles",
    "/api/v1/organisations/%00",
    "/api/v1/users?limit=abc&offset=-1",
    "/api/v1/users?limit=1e9",
    "/api/v1/users?unknown=1",
    "/api/v1/users?active=maybe",
    "/%",
    "/api/v1//users",
    "/api/v1/users/",
]
JUNK_BODIES = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"string"',
    b"\x00\x01\x02",
    b"{" * 5000 + b"}" * 5000,
    b'{"username": {"$gt": ""}, "password": []}',
    b'{"username": "' + "\u202e".encode() + b'", "password": 1e999}',
    b"\xef\xbb\xbf{}",
    b'{"roles": [{"role": "god", "org_id": null}]}',
    b'{"session": "cookie", "session": "token"}',
]
JUNK_HEADERS = [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer " + "x" * 9000},
    {"Authorization": "Bearer a.b.c"},
    {"Authorization": "\u00e9t\u00e9"},
    {"Cookie": "cpd_access=" + "%" * 100},
    {"Cookie": "cpd_access"},
    {"X-Request-ID": "../../\r"},
    {"Content-Type": "application/json; charset=latin-1"},
    {"Content-Type": "multipart/form-data; boundary=x"},
    {"X-Forwarded-For": "not-an-ip, , ::1"},
    {"Content-Length": "abc"},
]
ROUTES = [
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/password"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/users/user-1"),
    ("POST", "/api/v1/users/import"),
    ("GET", "/api/v1/users"),
    ("PUT", "/api/v1/users/user-1"),
    ("OPTIONS", "/api/v1/me"),
]


def test_junk_never_gets_a_500(client):
    """Junk paths, bodies and headers never make the gateway answer 500."""
    rng = random.Random(20261203)
    statuses = set()
    requests_made = 0
    for path in JUNK_PATHS:
        for method in ("GET", "POST"):
            response = client.request(method, path, headers=AUTH)
            statuses.add(response.status_code)
            assert response.status_code < 500, (method, path, response.text)
            requests_made += 1
    for _ in range(150):
        method, path = rng.choice(ROUTES)
        headers = dict(rng.choice(JUNK_HEADERS))
        if rng.random() < 0.5:
            headers.setdefault("Authorization", AUTH["Authorization"])
        headers.setdefault("Content-Type", "application/json")
        body = rng.choice(JUNK_BODIES)
        if rng.random() < 0.2:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        try:
            response = client.request(method, path, data=body, headers=headers)
        except ValueError:
            continue  # requests itself refuses some header values
        statuses.add(response.status_code)
        assert response.status_code != 500, (method, path, headers, body[:80])
        assert response.status_code < 500 or response.status_code in (502, 503)
        if response.content:  # not the HTTP server's own bare 400
            assert "X-Request-ID" in response.headers, (headers, response.status_code)
        requests_made += 1
    assert requests_made > 150
    assert 500 not in statuses
