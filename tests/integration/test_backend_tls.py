"""TLS from DAL to a backend (instances.<name>.tls).

The shared test instances run without TLS (@@have_ssl is DISABLED): against them, a pool
told to use TLS opens no connection and the client gets an ERR naming the instance and the
setting. The encrypted path runs against a third instance that `dal localdb` starts with a
self-signed certificate because its config entry sets `tls`.
"""

from __future__ import annotations

import pymysql
import pytest
import yaml

from tests.dal_process import DalProcess, free_port, write_config


def test_backend_without_tls_is_refused_when_tls_is_required(tmp_path, direct):
    with direct("a").cursor() as cur:
        cur.execute("SELECT @@have_ssl")
        if cur.fetchone()[0] == "YES":
            pytest.skip("test instance a offers TLS; this test needs one that does not")
    path = tmp_path / "dal.yaml"
    port = free_port()
    raw = write_config(path, listen={"host": "127.0.0.1", "port": port},
                       metrics={"host": "127.0.0.1", "port": free_port()})
    raw["instances"]["a"]["tls"] = {}
    path.write_text(yaml.safe_dump(raw))
    proc = DalProcess(path, port, tmp_path / "dal.log").start()
    try:
        def connect() -> pymysql.connections.Connection:
            return pymysql.connect(host="127.0.0.1", port=port, user="app", password="app",
                                   database="trade", ssl_disabled=True, connect_timeout=10,
                                   read_timeout=30, autocommit=True)

        # pymysql's first statement (SET autocommit) already needs instance a.
        with pytest.raises(pymysql.err.OperationalError) as info:
            connect().cursor().execute("SELECT COUNT(*) FROM merchants")
        code, message = info.value.args
        assert code == 1105
        assert "backend a does not offer TLS" in message
        assert "instances.a.tls" in message
    finally:
        assert proc.stop() == 0


def test_pool_talks_tls_to_a_tls_backend(tmp_path, monkeypatch):
    """A third local instance started by `dal localdb` with a certificate (because the config
    sets instances.c.tls), serving a second logical database; DAL verifies the certificate
    against it (ca, check_hostname) and the backend session reports a TLS cipher."""
    from config.loader import load_config
    from tests.dal_process import ROOT
    from tools import localdb

    monkeypatch.chdir(ROOT)  # the test config's datadirs are relative to the repository
    path = tmp_path / "dal.yaml"
    port = free_port()
    raw = write_config(path, listen={"host": "127.0.0.1", "port": port},
                       metrics={"host": "127.0.0.1", "port": free_port()})
    datadir = tmp_path / "c"
    raw["instances"]["c"] = {
        "host": "127.0.0.1", "port": free_port(), "user": "dal", "password": "dal",
        "datadir": str(datadir), "server_id": 31,
        "tls": {"ca": str(tmp_path / "c.tls" / "server-cert.pem"), "check_hostname": True}}
    raw["databases"]["tlsdb"] = {
        "default_instance": "c", "default_database": "tlsdb",
        "dimensions": {"user": {"key": "user_id", "shards": 1, "prefix": "tls_user_",
                                "placement": [{"shards": "0", "instance": "c"}]}}}
    path.write_text(yaml.safe_dump(raw))
    (instance,) = [m for m in localdb.managed(load_config(path)) if m.name == "c"]
    localdb.up_one(instance, lambda line: None)
    try:
        root = localdb.root_connect(instance)
        with root.cursor() as cur:
            cur.execute("SELECT @@have_ssl")
            assert cur.fetchone() == ("YES",)
            cur.execute("CREATE DATABASE IF NOT EXISTS tlsdb")
            cur.execute("CREATE TABLE IF NOT EXISTS tlsdb.t (id INT PRIMARY KEY, v TEXT)")
        root.close()
        proc = DalProcess(path, port, tmp_path / "dal.log").start()
        try:
            conn = pymysql.connect(host="127.0.0.1", port=port, user="app", password="app",
                                   database="tlsdb", ssl_disabled=True, autocommit=True,
                                   connect_timeout=10, read_timeout=30)
            with conn.cursor() as cur:
                cur.execute("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                            "WHERE VARIABLE_NAME = 'Ssl_cipher'")
                assert cur.fetchone()[0], "the backend session is not encrypted"
                cur.execute("INSERT INTO t VALUES (1, 'über TLS')")
                cur.execute("SELECT v FROM t WHERE id = 1")
                assert cur.fetchone() == ("über TLS",)
            conn.close()
        finally:
            assert proc.stop() == 0
    finally:
        localdb.down_one(instance, lambda line: None)
