"""The database a statement that selects none runs in, for a user with a `databases:` list.

A pooled connection stays in whatever database its last user's statement selected, and what a
statement does not qualify (a stored function, a sequence, a table sqlglot did not see) is
looked up there: for such a user, one of its own databases on that instance instead
(`Catalog.home_database`). Other users' statements run wherever the connection is, as before
(they may name every logical database anyway).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from router.plan import Plan


def home_schema(session: SessionPort, instance: str | None) -> str | None:
    """The database a statement that selects none runs in: for a user with a `databases:`
    list one of its own on ``instance`` (`Catalog.home_database`), else None (wherever the
    connection is)."""
    if session.databases is None or instance is None:
        return None
    return session.server.router.catalog.home_database(session.databases, instance)


def confined(session: SessionPort, plan: Plan) -> Plan:
    """``plan`` with the session's `home_schema` when it selects no database."""
    if plan.schema is not None or session.databases is None:
        return plan
    return replace(plan, schema=home_schema(session, plan.instance))
