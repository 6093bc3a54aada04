"""router.params: a prepared statement's parameters and literals as the plan's slots."""

from __future__ import annotations

from router.params import shape_of
from router.template import Template


def test_parameters_and_literals_become_slots_in_order():
    shape = shape_of(b"SELECT * FROM orders WHERE user_id = ? AND status IN ('a', 'b') "
                     b"AND x = 5 AND id IN (?, ?) AND note = '?' LIMIT ?")
    assert shape.fp.key == (b"SELECT * FROM orders WHERE user_id = ? AND status IN (?) "
                            b"AND x = ? AND id IN (?, ?) AND note = ? LIMIT ?")
    assert shape.params == 4
    assert shape.sources == (0, (b"'a'", b"'b'"), (b"5",), 1, 2, (b"'?'",), 3)
    assert shape.slots([b"7", b"8", b"9", b"10"])[:4] == [[b"7"], [b"'a'", b"'b'"], [b"5"],
                                                          [b"8"]]
    assert shape.unbound[0] == (b"?",) and shape.unbound[2] == (b"5",)


def test_render_leaves_parameters_as_markers_unless_narrowed():
    shape = shape_of(b"SELECT a FROM t WHERE k IN (?, ?) AND s = 'x' AND v = ?")
    template = Template((b"SELECT a FROM ", None, b"t WHERE k IN (", 0, b", ", 1,
                         b") AND s = ", 2, b" AND v = ", 3))
    slots = shape.slots([b"1", b"2", b"3"])
    assert shape.render(template, slots, b"db_007") == (
        b"SELECT a FROM db_007.t WHERE k IN (?, ?) AND s = 'x' AND v = ?", [0, 1, 2])
    # An IN list narrowed to one shard's values: the other parameter becomes its literal.
    sql, order = shape.render(template, slots, b"db_001", {0: [b"1"], 1: [b"NULL"]})
    assert sql == b"SELECT a FROM db_001.t WHERE k IN (1, NULL) AND s = 'x' AND v = ?"
    assert order == [2]
