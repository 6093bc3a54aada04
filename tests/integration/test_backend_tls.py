"""TLS from DAL to a backend (instances.<name>.tls).

The local test instances run without TLS (`dal localdb` starts mariadbd with no certificate,
so @@have_ssl is DISABLED), so what is tested here is the refusal: a pool told to use TLS
with a backend that does not offer it opens no connection and the client gets an ERR that
names the instance and the setting. The encrypted path itself (SSLRequest, start_tls, the
cleartext caching_sha2 full auth over TLS) is not exercised against a live TLS backend yet.
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
