"""The execution context (DESIGN.md, "The engine's shape"): how a plan meets the backends.

- `leases`: a backend connection for the session's next statement, with its schema, variables
  and deferred BEGIN; pins and the transaction's shard; giving connections back.
- `relay`: one statement on one backend, its answer relayed raw to the result sink (the hot
  path, callbacks only); the timeout, lost-connection retry and pin bookkeeping around it.
- `cursor`: the `router.engine.base.Cursor` a plan tree runs through (scatter, merge, insert).
- `stream`: a concatenation scatter relayed shard by shard in bounded memory.
- `sink`: where results go: the client's transport, or a multi-statement batch's buffer.

Text statements, prepared executions, multi-statement batches and bulk executions all use it.
"""
