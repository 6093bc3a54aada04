"""Row codecs, below both `router` and `pool`: length-encoded fields, column types, column
definitions and text rows, and the codec's one exception.

`router` merges rows with these and `pool` reads backend replies with them; `dal.wire` builds
the protocol's messages and state machines on top. Nothing here imports `dal` or `pool`.
"""
