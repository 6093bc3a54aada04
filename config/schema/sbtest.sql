-- The `sbtest` schema: sysbench's table, for `dal bench --sharded` (config/bench.yaml).
-- sbtest1 is sharded by `id` over the user dimension: one copy of the table in every
-- sbtest_NNN database, holding the rows with id % 120 == NNN.

CREATE TABLE sbtest1 (
  id INT NOT NULL,
  k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '',
  pad CHAR(60) NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  KEY k_1 (k)
) ENGINE=InnoDB;
