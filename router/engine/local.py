"""The plans no backend statement answers as sent: `Local` (DAL answers), `SetVariables` (DAL
records session variables to replay), `Refuse` (an ERR with a documented code)."""

from __future__ import annotations

from router.engine.base import Bindings, Cursor, Primitive, Slots
from router.plan import Plan


class Local(Primitive):
    """Answered by DAL itself: handler ``plan.handler`` of `dal.local` with ``plan.args``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def describe(self, slots: Slots | None = None) -> str:
        return f"Local: answered by DAL ({self.plan.handler})"

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        cursor.local(self.plan, bindings)


class SetVariables(Primitive):
    """Session variables recorded by DAL and replayed on whichever connection serves it."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def describe(self, slots: Slots | None = None) -> str:
        names = ", ".join(name for name, _ in self.plan.assignments)
        evaluated = ", ".join(name for name, _ in self.plan.args)
        text = f"SetVariables {names}: recorded and replayed"
        return text + (f" ({evaluated} evaluated once first)" if evaluated else "")

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        cursor.set_variables(self.plan)


class Refuse(Primitive):
    """An ERR: ``plan.error``; ``plan.rule`` names the protection rule it enforces."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def describe(self, slots: Slots | None = None) -> str:
        code, _, message = self.plan.error  # type: ignore[misc]
        rule = f" (rule {self.plan.rule})" if self.plan.rule else ""
        return f"Refuse{rule}: ERROR {code}: {message}"

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        code, sqlstate, message = self.plan.error  # type: ignore[misc]
        if self.plan.rule is not None:
            cursor.count_rule(self.plan.rule)
        cursor.send_error(code, sqlstate, message)
