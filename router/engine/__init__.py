"""Plans as trees of primitives, in the Vitess engine's shape (DESIGN.md, "The engine's shape").

The planner builds a tree once per statement shape and the plan cache holds it; an execution
walks it with a `Cursor` (the execution context, implemented by `dal.execute`) and the
statement's `Bindings`. Nothing here performs I/O itself: every backend call goes through the
cursor, so text statements, prepared executions, batches and bulk executions share one tree.

One module per primitive: route (Route; it covers the default database, DESIGN.md's
Unsharded), scatter (Scatter: a sharded statement's leaf, and the run of a row tree),
broadcast, insert (InsertSplit), local (Local, SetVariables, Refuse), and the merges above a
Scatter: aggregate, distinct, mergesort, limit, project (merging: their common shape). spec
is the MergeSpec the rewrite produces, build turns plans into trees, describe words them.
"""
