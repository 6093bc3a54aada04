"""SQL text for MariaDB from a sqlglot tree.

sqlglot's MySQL generator writes MySQL 8 forms that MariaDB 10.11 does not read:
``REGEXP_LIKE(a, b)`` for ``a REGEXP b`` (and RLIKE) and ``FOR SHARE`` for ``LOCK IN SHARE
MODE``. Every statement DAL regenerates for a backend goes through `mariadb_sql`, which writes
those back in the forms MariaDB reads (its generator classes are compiled, so they cannot be
subclassed: the tree is rewritten instead).
"""

from __future__ import annotations

from sqlglot import exp


def mariadb_sql(tree: exp.Expression) -> str:
    """``tree`` as MariaDB-readable SQL (the tree itself is not changed)."""
    return tree.transform(_mariadb_form).sql(dialect="mysql")


def _mariadb_form(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.RegexpLike) and node.args.get("flag") is None:
        text = exp.var(f"{mariadb_sql(node.this)} REGEXP {mariadb_sql(node.expression)}")
        return text if isinstance(node.parent, exp.Paren) else exp.Paren(this=text)
    if (isinstance(node, exp.Lock) and not node.args.get("update") and not node.args.get("key")
            and not node.expressions and node.args.get("wait") is None):
        return exp.var("LOCK IN SHARE MODE")
    return node
