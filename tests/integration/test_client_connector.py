"""mysql-connector-python against DAL, with both implementations: the pure-Python one
(``use_pure=True``) and the C extension over libmysqlclient (``use_pure=False``).

The C extension runs in a child interpreter (see tests/clients/connector_scenarios.py for why),
and is skipped only if ``mysql.connector.HAVE_CEXT`` is False there too. TLS is off
(``ssl_disabled=True``) unless a scenario asks for it (TLS: test_tls.py); prepared cursors are
in test_prepared_clients.py. The `use_pure` and `scenario` fixtures are in tests/conftest.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.clients.connector_scenarios import CREATED
from tests.clients.merchants import count_direct, purge, unique_prefix

COLUMNS = "id, name, region_id, rating, created_at"


@pytest.fixture
def prefix(direct):
    value = unique_prefix("connector")
    yield value
    purge(direct("a", "trade"), value)


def direct_merchant(direct_conn, merchant_id):
    with direct_conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM trade.merchants WHERE id = %s", (merchant_id,))
        return cur.fetchone()


def test_crud_commit_and_rollback(scenario, use_pure, dal, direct, prefix):
    obs = scenario("crud", port=dal.port, prefix=prefix)
    backend = direct("a", "trade")

    # Connect-time metadata.
    assert obs["class"] == ("MySQLConnection" if use_pure else "CMySQLConnection")
    assert obs["autocommit"] is False
    assert obs["database"] == "trade"
    assert obs["charset"] == "utf8mb4"
    assert obs["server_info"].startswith("5.5.5-10.")
    assert obs["connection_id"] > 0
    version = obs["database_version"][1]
    assert obs["database_version"] == ("trade", version)
    assert obs["server_info"].removeprefix("5.5.5-").split("-")[0] == version.split("-")[0]

    # INSERT: lastrowid, rowcount, the row inside the transaction.
    merchant_id = obs["id"]
    assert isinstance(merchant_id, int) and merchant_id > 0
    assert obs["insert_rowcount"] == 1
    assert obs["in_transaction"] is True
    assert obs["row_in_transaction"] == (merchant_id, obs["name"], 7, Decimal("4.25"), CREATED)
    assert obs["in_transaction_after_commit"] is False

    # UPDATE: changed rows (the connector does not ask for CLIENT_FOUND_ROWS by default).
    assert obs["update_rowcount"] == 1
    assert obs["noop_update_rowcount"] == 0
    updated = (merchant_id, obs["name"], None, Decimal("3.10"), CREATED)
    assert obs["row_updated"] == updated
    assert direct_merchant(backend, merchant_id) == updated

    # rollback() discarded the second INSERT, for DAL and on the backend.
    assert obs["rolled_back_id"] not in (None, 0, merchant_id)
    assert obs["rolled_back_count"] == 0
    assert count_direct(backend, obs["rolled_back_id"]) == 0

    assert obs["cast"] == [(0,)]
    assert obs["warnings"] == [("Warning", 1292, "Truncated incorrect INTEGER value: 'x'")]

    # DELETE and commit.
    assert scenario("delete", port=dal.port, merchant_id=merchant_id) == {
        "rowcount": 1, "after": []}
    assert count_direct(backend, merchant_id) == 0


@pytest.mark.parametrize("user", ["app", "legacy", "modern"])
def test_login_with_the_default_plugin(scenario, use_pure, dal, user):
    result = scenario("login", port=dal.port, user=user, password=user)
    assert result == {"class": "MySQLConnection" if use_pure else "CMySQLConnection",
                      "database": "trade"}


def explicit_plugin_broken_in_cext(scenario, backends):
    """The C extension of mysql-connector 26.x cannot connect at all when ``auth_plugin`` is
    given, even straight to MariaDB: libmysqlclient fails with errno 2002 and no message, and
    connection_cext.py then dies on ``err.msg`` (AttributeError). Returns the reason to skip
    if a direct connection to backend a fails that way too."""
    cfg = backends["a"]
    probe = scenario("login", port=cfg["port"], user=cfg["user"], password=cfg["password"],
                     host=cfg["host"], database=None, auth_plugin="caching_sha2_password")
    if "error" in probe:
        return ("mysql-connector's C extension cannot log in with an explicit auth_plugin even "
                f"directly to MariaDB (client-side bug): {probe['error']}")
    return None


def test_caching_sha2_fast_auth(scenario, use_pure, dal, backends):
    """`modern` has only a sha2 hash: the scramble is checked at once (fast auth)."""
    if not use_pure and (reason := explicit_plugin_broken_in_cext(scenario, backends)):
        pytest.skip(reason)
    result = scenario("login", port=dal.port, user="modern", password="modern",
                      auth_plugin="caching_sha2_password")
    assert result.get("database") == "trade", result


def test_caching_sha2_full_auth(scenario, use_pure, dal, backends):
    """`legacy` has only the native hash, so DAL asks for full authentication. The pure
    connector has no RSA: its caching_sha2_password plugin answers the full-auth request with
    the cleartext password (plugins/caching_sha2_password.py, ``auth_response``; the class
    docstring says RSA is not supported), which an unencrypted server connection must refuse,
    as MySQL does. DAL refuses it with 1045 and says why; pymysql covers the RSA path
    (test_client_pymysql.py::test_login_caching_sha2_password_first[legacy])."""
    if not use_pure and (reason := explicit_plugin_broken_in_cext(scenario, backends)):
        pytest.skip(reason)
    result = scenario("login", port=dal.port, user="legacy", password="legacy",
                      auth_plugin="caching_sha2_password")
    if use_pure:
        error = result.get("error")
        assert error is not None, result
        assert error["errno"] == 1045
        assert "full authentication over an unencrypted connection" in error["msg"]
        assert "cleartext password" in error["msg"]
    else:  # libmysqlclient requests DAL's public key and encrypts the password
        assert result.get("database") == "trade", result


def test_native_plugin_then_switch_to_caching_sha2(scenario, use_pure, dal, backends):
    """Asking for mysql_native_password as `modern` (sha2 hash only): DAL switches the client
    to caching_sha2_password and the login succeeds."""
    if not use_pure and (reason := explicit_plugin_broken_in_cext(scenario, backends)):
        pytest.skip(reason)
    result = scenario("login", port=dal.port, user="modern", password="modern",
                      auth_plugin="mysql_native_password")
    assert result.get("database") == "trade", result



@pytest.mark.parametrize(("user", "use_pure"), [
    pytest.param("app", True, id="pure-app"),
    pytest.param("legacy", True, id="pure-legacy"),
    pytest.param("modern", True, id="pure-modern-after-switch"),
    pytest.param("nobody", True, id="pure-unknown-user"),
    pytest.param("app", False, id="cext-app"),
    pytest.param("legacy", False, id="cext-legacy"),
    pytest.param("modern", False, id="cext-modern-after-switch"),
    pytest.param("nobody", False, id="cext-unknown-user"),
])
def test_wrong_password_is_refused_with_1045(scenario, dal, user):
    result = scenario("login", port=dal.port, user=user, password="wrong")
    error = result.get("error")
    assert error is not None, result
    assert error["errno"] == 1045, error
    assert f"Access denied for user '{user}'@" in error["msg"]
    # DAL still serves after the refusal.
    after = scenario("login", port=dal.port, user="app", password="app")
    assert after.get("database") == "trade", after
