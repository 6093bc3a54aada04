"""Plans as trees of primitives, in the Vitess engine's shape (DESIGN.md, "The engine's shape").

The planner builds a tree once per statement shape and the plan cache holds it; an execution
walks it with a `Cursor` (the execution context, implemented by `dal.execute`) and the
statement's `Bindings`. Nothing here performs I/O itself: every backend call goes through the
cursor, so text statements, prepared executions, batches and bulk executions share one tree.
"""
