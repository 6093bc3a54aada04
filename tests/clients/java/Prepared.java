// MariaDB Connector/J with useServerPrepStmts=true against DAL: the CRUD steps of
// tests/clients/prepared_scenarios.py. Usage: java Prepared <port> write <name> <user>...
//                                                 java Prepared <port> delete <user:id,...> <merchant id>
// Prints one JSON object; every value as a string (getString), NULL as null.
import java.sql.*;
import java.util.*;

public class Prepared {
    static String q(String s) {
        return s == null ? "null" : "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    static String rows(ResultSet rs) throws SQLException {
        List<String> out = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) row.add(q(rs.getString(i)));
            out.add("[" + String.join(",", row) + "]");
        }
        return "[" + String.join(",", out) + "]";
    }

    public static void main(String[] args) throws Exception {
        // The driver's SET sql_mode = concat(@@sql_mode, ...) is evaluated once by DAL and
        // replayed as a literal: it no longer pins the session.
        String url = "jdbc:mariadb://127.0.0.1:" + args[0] + "/trade?useServerPrepStmts=true"
            + "&user=app&password=app";
        String created = "2024-02-29 23:59:58.123456";
        StringBuilder out = new StringBuilder("{");
        try (Connection conn = DriverManager.getConnection(url)) {
            if (args[1].equals("write")) {
                String name = args[2];
                List<String> users = Arrays.asList(args).subList(3, args.length);
                Map<String, String> ids = new LinkedHashMap<>();
                try (PreparedStatement ps = conn.prepareStatement(
                        "INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, updated_at) "
                        + "VALUES (?, ?, ?, ?, ?, ?, ?)", Statement.RETURN_GENERATED_KEYS)) {
                    for (String user : users) {
                        ps.setLong(1, Long.parseLong(user));
                        ps.setLong(2, 31);
                        ps.setInt(3, 2);
                        ps.setBigDecimal(4, new java.math.BigDecimal("12.50"));
                        ps.setString(5, "note " + user);
                        ps.setTimestamp(6, Timestamp.valueOf(created));
                        ps.setTimestamp(7, Timestamp.valueOf(created));
                        ps.executeUpdate();
                        try (ResultSet keys = ps.getGeneratedKeys()) {
                            keys.next();
                            ids.put(user, keys.getString(1));
                        }
                    }
                }
                List<String> idParts = new ArrayList<>();
                for (Map.Entry<String, String> e : ids.entrySet()) idParts.add(q(e.getKey()) + ":" + q(e.getValue()));
                out.append("\"ids\":{").append(String.join(",", idParts)).append("},");
                List<String> rowParts = new ArrayList<>();
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT id, user_id, status, total, note, created_at FROM orders WHERE user_id = ? ORDER BY id")) {
                    for (int round = 0; round < 2; round++) {
                        rowParts.clear();
                        for (String user : users) {
                            ps.setLong(1, Long.parseLong(user));
                            try (ResultSet rs = ps.executeQuery()) { rowParts.add(q(user) + ":" + rows(rs)); }
                        }
                    }
                }
                out.append("\"rows\":{").append(String.join(",", rowParts)).append("},");
                try (PreparedStatement ps = conn.prepareStatement(
                        "UPDATE orders SET note = ?, status = ? WHERE user_id = ? AND id = ?")) {
                    ps.setString(1, "updated");
                    ps.setInt(2, 5);
                    ps.setLong(3, Long.parseLong(users.get(0)));
                    ps.setLong(4, Long.parseLong(ids.get(users.get(0))));
                    out.append("\"update_rowcount\":").append(ps.executeUpdate()).append(",");
                }
                String marks = String.join(", ", Collections.nCopies(users.size(), "?"));
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT COUNT(*), SUM(total) FROM orders WHERE user_id IN (" + marks + ")")) {
                    for (int i = 0; i < users.size(); i++) ps.setLong(i + 1, Long.parseLong(users.get(i)));
                    try (ResultSet rs = ps.executeQuery()) {
                        String r = rows(rs);
                        out.append("\"aggregate\":").append(r, 1, r.length() - 1).append(",");
                    }
                }
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT id, user_id, status, total, note, created_at FROM orders WHERE user_id IN ("
                        + marks + ") ORDER BY id")) {
                    for (int i = 0; i < users.size(); i++) ps.setLong(i + 1, Long.parseLong(users.get(i)));
                    try (ResultSet rs = ps.executeQuery()) { out.append("\"scatter\":").append(rows(rs)).append(","); }
                }
                String merchantId;
                try (PreparedStatement ps = conn.prepareStatement(
                        "INSERT INTO merchants (name, region_id, rating, created_at) VALUES (?, ?, ?, ?)",
                        Statement.RETURN_GENERATED_KEYS)) {
                    ps.setString(1, name);
                    ps.setInt(2, 7);
                    ps.setBigDecimal(3, new java.math.BigDecimal("4.25"));
                    ps.setTimestamp(4, Timestamp.valueOf(created));
                    ps.executeUpdate();
                    try (ResultSet keys = ps.getGeneratedKeys()) { keys.next(); merchantId = keys.getString(1); }
                }
                out.append("\"merchant_id\":").append(q(merchantId)).append(",");
                try (PreparedStatement ps = conn.prepareStatement(
                        "UPDATE merchants SET rating = ?, region_id = ? WHERE id = ?")) {
                    ps.setBigDecimal(1, new java.math.BigDecimal("3.10"));
                    ps.setNull(2, Types.INTEGER);
                    ps.setLong(3, Long.parseLong(merchantId));
                    out.append("\"merchant_update_rowcount\":").append(ps.executeUpdate()).append(",");
                }
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT id, name, region_id, rating, created_at FROM merchants WHERE id = ?")) {
                    ps.setLong(1, Long.parseLong(merchantId));
                    try (ResultSet rs = ps.executeQuery()) {
                        String r = rows(rs);
                        out.append("\"merchant\":").append(r, 1, r.length() - 1);
                    }
                }
            } else {
                List<String> counts = new ArrayList<>();
                try (PreparedStatement ps = conn.prepareStatement("DELETE FROM orders WHERE user_id = ? AND id = ?")) {
                    for (String pair : args[2].split(",")) {
                        String[] p = pair.split(":");
                        ps.setLong(1, Long.parseLong(p[0]));
                        ps.setLong(2, Long.parseLong(p[1]));
                        counts.add(String.valueOf(ps.executeUpdate()));
                    }
                }
                out.append("\"order_rowcounts\":[").append(String.join(",", counts)).append("],");
                try (PreparedStatement ps = conn.prepareStatement("DELETE FROM merchants WHERE id = ?")) {
                    ps.setLong(1, Long.parseLong(args[3]));
                    out.append("\"merchant_rowcount\":").append(ps.executeUpdate());
                }
            }
        }
        System.out.print(out.append("}"));
    }
}
