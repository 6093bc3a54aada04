"""The router's hot path: fingerprints and the plan cache keep sqlglot off repeated shapes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import DEFAULT_CONFIG, load_config
from router import fingerprint as fingerprint_module
from router.fingerprint import fingerprint, unquote_string
from router.planner import Router

CONFIG = load_config(DEFAULT_CONFIG)

literal = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str).filter(
        lambda s: not s.startswith("-")),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).map(
        lambda s: "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"),
    st.binary(max_size=8).map(lambda b: "0x" + b.hex() if b else "0x00"),
)


@given(st.lists(literal, min_size=1, max_size=5), st.lists(literal, min_size=1, max_size=5))
@settings(max_examples=200)
def test_statements_differing_only_in_literals_share_a_fingerprint(a: list[str],
                                                                   b: list[str]) -> None:
    shape = "SELECT name FROM merchants WHERE id = {} AND name IN ({}) -- x = 1"
    first = shape.format(a[0], ", ".join(a)).encode()
    second = shape.format(b[0], ", ".join(b)).encode()
    fp1, fp2 = fingerprint(first), fingerprint(second)
    assert fp1.key == fp2.key
    assert fp1.values(first) == [x.encode() for x in [a[0], *a]]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_string_literals_round_trip(text: str) -> None:
    quoted = "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    sql = f"SELECT {quoted}".encode()
    fp = fingerprint(sql)
    assert fp.key == b"SELECT ?"
    assert unquote_string(fp.values(sql)[0]) == text.encode()


_HEAD_ALPHABET = st.sampled_from(list("SELCT id=xe.15'`\"#-/* \n(),@$ab0x"))


@given(st.lists(st.text(alphabet=_HEAD_ALPHABET, max_size=24), min_size=1, max_size=3),
       st.lists(st.integers(min_value=0, max_value=10**20), min_size=2, max_size=4))
@settings(max_examples=400)
def test_statements_ending_in_digits_get_the_fingerprint_a_full_scan_gives(
        heads: list[str], tails: list[int]) -> None:
    """The shortcut for statements ending in a number (looked up by the text before it)
    gives exactly what scanning the whole statement gives, whatever that text is."""
    for head in heads:
        for tail in tails:
            sql = f"{head}{tail}".encode()
            expected = fingerprint_module._scan(sql)
            assert fingerprint(sql) == expected, sql
            assert fingerprint(sql) == expected, sql  # the second time from the shortcut


def test_identifiers_with_digits_and_comments_are_not_literals() -> None:
    sql = b"SELECT c2 FROM sbtest1 /* id = 5 */ WHERE `col 7` = 7 AND t.x1=1e3"
    fp = fingerprint(sql)
    assert fp.key == b"SELECT c2 FROM sbtest1 /* id = 5 */ WHERE `col 7` = ? AND t.x1=?"


def test_repeated_shape_does_not_run_sqlglot() -> None:
    router = Router(CONFIG)
    for i in range(100):
        sql = f"SELECT name FROM merchants WHERE id = {i} AND name IN ({', '.join(['1'] * i)}0)"
        router.plan(sql.encode(), fingerprint(sql.encode()), "trade", admin=False)
    assert router.parses == 1
    assert router.cache.hits == 99
    assert router.cache.misses == 1


def test_plans_depend_on_schema_and_role() -> None:
    router = Router(CONFIG)
    ddl = b"CREATE TABLE t1 (a INT)"
    assert router.plan(ddl, fingerprint(ddl), "trade", admin=False).error[0] == 1227
    assert router.plan(ddl, fingerprint(ddl), "trade", admin=True).kind == "route"
    sel = b"SELECT * FROM merchants"
    assert router.plan(sel, fingerprint(sel), None, admin=False).error[0] == 1046


def test_cache_is_bounded() -> None:
    router = Router(CONFIG, capacity=10)
    for i in range(50):
        sql = f"SELECT c{i} FROM merchants".encode()
        router.plan(sql, fingerprint(sql), "trade", admin=False)
    assert len(router.cache) == 10
