// node mysql2 `execute` (server-side prepared statements) against DAL: the same CRUD steps as
// tests/clients/prepared_scenarios.py. Usage: node prepared.js <port> write <name> <user>...
//                                                  node prepared.js <port> delete <json ids> <merchant id>
// Prints one JSON object. Values come back as strings (bigNumberStrings, dateStrings).
const mysql = require('mysql2/promise');

async function main() {
  const [port, step, ...args] = process.argv.slice(2);
  const conn = await mysql.createConnection({
    host: '127.0.0.1', port: Number(port), user: 'app', password: 'app', database: 'trade',
    supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, decimalNumbers: false,
  });
  const created = '2024-02-29 23:59:58.123456';
  const out = {};
  try {
    if (step === 'write') {
      const [name, ...userArgs] = args;
      const users = userArgs.map(String);
      out.ids = {}; out.rows = {};
      for (const user of users) {
        const [ok] = await conn.execute(
          'INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, updated_at) ' +
          'VALUES (?, ?, ?, ?, ?, ?, ?)', [user, 31, 2, '12.50', `note ${user}`, created, created]);
        out.ids[user] = String(ok.insertId);
      }
      for (let round = 0; round < 2; round++) {
        for (const user of users) {
          const [rows] = await conn.execute(
            'SELECT id, user_id, status, total, note, created_at FROM orders WHERE user_id = ? ORDER BY id',
            [user], );
          out.rows[user] = rows.map((r) => Object.values(r));
        }
      }
      const [upd] = await conn.execute(
        'UPDATE orders SET note = ?, status = ? WHERE user_id = ? AND id = ?',
        ['updated', 5, users[0], out.ids[users[0]]]);
      out.update_rowcount = upd.affectedRows;
      const marks = users.map(() => '?').join(', ');
      const [agg] = await conn.execute(
        `SELECT COUNT(*), SUM(total) FROM orders WHERE user_id IN (${marks})`, users);
      out.aggregate = Object.values(agg[0]);
      const [scatter] = await conn.execute(
        `SELECT id, user_id, status, total, note, created_at FROM orders WHERE user_id IN (${marks}) ORDER BY id`,
        users);
      out.scatter = scatter.map((r) => Object.values(r));
      const [ins] = await conn.execute(
        'INSERT INTO merchants (name, region_id, rating, created_at) VALUES (?, ?, ?, ?)',
        [name, 7, '4.25', created]);
      out.merchant_id = String(ins.insertId);
      const [mu] = await conn.execute(
        'UPDATE merchants SET rating = ?, region_id = ? WHERE id = ?', ['3.10', null, out.merchant_id]);
      out.merchant_update_rowcount = mu.affectedRows;
      const [m] = await conn.execute(
        'SELECT id, name, region_id, rating, created_at FROM merchants WHERE id = ?', [out.merchant_id]);
      out.merchant = Object.values(m[0]);
      // mysql2 closes a statement it evicts from its cache, and again on unprepare.
      await conn.unprepare('SELECT id, name, region_id, rating, created_at FROM merchants WHERE id = ?');
    } else {
      const ids = JSON.parse(args[0]);
      out.order_rowcounts = [];
      for (const [user, id] of Object.entries(ids)) {
        const [del] = await conn.execute('DELETE FROM orders WHERE user_id = ? AND id = ?', [user, id]);
        out.order_rowcounts.push(del.affectedRows);
      }
      const [dm] = await conn.execute('DELETE FROM merchants WHERE id = ?', [args[1]]);
      out.merchant_rowcount = dm.affectedRows;
    }
  } finally {
    await conn.end();
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => { process.stderr.write(String(err.stack || err)); process.exit(1); });
