"""COM_CHANGE_USER through DAL with mysql-connector (pure Python, and the C extension, i.e.
libmysqlclient 8's mysql_change_user): both auth plugins, the database in the packet, the
session reset (transaction rolled back, user variables gone, role of the new user), and a
failed change (ERR 1045, connection kept as the previous user, as MariaDB does)."""

from __future__ import annotations

import pytest

from tests.clients.merchants import purge, unique_prefix


@pytest.fixture
def name(direct):
    prefix = unique_prefix("change-user")
    yield prefix + "m"
    purge(direct("a", "trade"), prefix)


# admin and app have both hashes (switched to mysql_native_password); modern has only the
# sha2 hash (caching_sha2_password fast auth); legacy only the native one.
@pytest.mark.parametrize(("user", "is_admin"), [
    ("admin", True), ("modern", False), ("legacy", False)])
def test_change_user_resets_the_session(scenario, dal, direct, name, user, is_admin):
    obs = scenario("change_user", port=dal.port, to_user=user, to_password=user, merchant=name)
    assert obs["in_transaction"] is True
    assert "error" not in obs, obs
    # The open transaction was rolled back, the user variable is gone, the database is the
    # packet's, and the new user's role applies.
    assert obs["after"] == (None, "trade", 0)
    assert obs["admin"] is True if is_admin else obs["admin"] == 1227
    with direct("a", "trade").cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM merchants WHERE name = %s", (name,))
        assert cur.fetchone() == (0,)


def test_change_user_without_database(scenario, dal, name):
    obs = scenario("change_user", port=dal.port, to_user="admin", to_password="admin",
                   merchant=name, database=None)
    assert "error" not in obs, obs
    assert obs["after"][:2] == (None, None)


def test_failed_change_user_keeps_the_connection_as_the_old_user(scenario, dal, direct,
                                                                   name):
    obs = scenario("change_user", port=dal.port, to_user="admin", to_password="wrong",
                   merchant=name)
    assert obs["error"]["errno"] == 1045, obs
    assert "Access denied for user 'admin'" in obs["error"]["msg"]
    # Still `app` (admin statements refused), session state reset as MariaDB does.
    assert obs["admin"] == 1227
    assert obs["after"] == (None, "trade", 0)
    with direct("a", "trade").cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM merchants WHERE name = %s", (name,))
        assert cur.fetchone() == (0,)


def test_change_to_require_tls_user_over_plain_tcp_is_refused(scenario, dal, name):
    obs = scenario("change_user", port=dal.port, to_user="secure", to_password="secure",
                   merchant=name)
    assert obs["error"]["errno"] == 3159, obs
