"""The operator's command line: organisations and their first admins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.auth import accounts, events
from services.auth.cli import main
from tests.service_support import outbox

from .conftest import SECRET, T0

ROOT = Path(__file__).resolve().parents[2]


def test_an_operator_creates_a_trust_a_school_and_their_admins(
    auth_db_url, db, capsys, tmp_path
):
    """create-org and create-admin print ids; the admin can log in."""
    url = ["--database-url", auth_db_url]
    assert main([*url, "create-org", "--kind", "trust", "--name", "Oak Trust"]) == 0
    trust_id = capsys.readouterr().out.strip()
    args = ["create-org", "--kind", "school", "--name", "Elm", "--trust", trust_id]
    assert main([*url, *args]) == 0
    school_id = capsys.readouterr().out.strip()

    password_file = tmp_path / "password"
    password_file.write_text("an operator chosen passphrase\n")
    admin = [
        "create-admin",
        "--username", "Boss",
        "--email", "boss@example.org",
        "--given-name", "Bo",
        "--family-name", "Ss",
        "--password-file", str(password_file),
    ]  # fmt: skip
    assert main([*url, *admin, "--org", trust_id]) == 0
    assert capsys.readouterr().out.split()[1:] == ["boss", "trust_admin"]
    admin[2] = "head"
    assert main([*url, *admin, "--org", school_id]) == 0
    assert capsys.readouterr().out.split()[1:] == ["head", "school_admin"]

    answer = accounts.login(
        db,
        username="boss",
        password="an operator chosen passphrase",
        ip=None,
        user_agent=None,
        secret=SECRET,
        now=T0,
    )
    assert answer["user"]["roles"][0]["role"] == "trust_admin"
    created = outbox(db, events.USER_CREATED)[0]
    assert created["actor"]["service"] == "cpd-admin"


def test_list_orgs_shows_trusts_and_schools(auth_db_url, world, capsys):
    """list-orgs prints one line per organisation, trusts first."""
    assert main(["--database-url", auth_db_url, "list-orgs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[0].split("\t")[1] == "trust"
    assert lines[0].endswith("Oak Trust")


def test_a_school_under_an_unknown_trust_is_an_error(auth_db_url, capsys):
    """A bad --trust exits 1 with the field problem on stderr."""
    args = ["create-org", "--kind", "school", "--name", "X", "--trust", "nope"]
    assert main(["--database-url", auth_db_url, *args]) == 1
    assert "parent_trust_id" in capsys.readouterr().err


def test_the_cli_runs_as_a_module(auth_db_url):
    """python -m services.auth.cli works, as the Makefile and operators use it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.auth.cli",
            "--database-url",
            auth_db_url,
            "list-orgs",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_migrate_brings_a_new_database_to_the_latest_schema(tmp_path, capsys):
    """migrate creates every auth table, here on the SQLite laptop default."""
    url = f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    assert main(["--database-url", url, "migrate"]) == 0
    assert (
        main(["--database-url", url, "create-org", "--kind", "trust", "--name", "T"])
        == 0
    )
    assert main(["--database-url", url, "list-orgs"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("\tT")
