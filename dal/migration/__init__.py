"""Live migration of an unsharded legacy database into the shards (issue 21,
docs/migration.md): the control tables (control.py) and DAL's side of the phases."""
