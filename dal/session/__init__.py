"""One client session (DESIGN.md, "The engine's shape"), in layers:

- `dal.frontend.Frontend`: the asyncio protocol, bytes in -> `dal.wire` command events;
- `state.SessionState`: the session state (user, database, variables, pins, transaction);
- `query.QuerySession`: COM_QUERY, from the statement's bytes to its plan's tree;
- `planning`: long statements read and planned on the planner thread;
- `answers`: what DAL answers itself, SET, COM_FIELD_LIST, COM_RESET_CONNECTION;
- `commands.ClientSession`: the command dispatch table.
"""

from dal.session.commands import ClientSession

__all__ = ["ClientSession"]
