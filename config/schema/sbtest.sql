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

-- `dal bench --scatter`: orders in the shape of trade.orders (config/schema/trade.sql), sharded
-- by their gene id (id % 120 is the user shard), for the 120-shard ORDER BY ... LIMIT 20.
CREATE TABLE orders (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  merchant_id BIGINT UNSIGNED NOT NULL,
  status TINYINT NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  note VARCHAR(255) NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  KEY idx_user_created (user_id, created_at),
  KEY idx_merchant_created (merchant_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
