// MariaDB Connector/J with its default properties against DAL (issue 22): the driver's own
// session set-up (SET sql_mode = concat(@@sql_mode, ...) for jdbcCompliantTruncation), then
// merchant reads on both instances, a scatter, and a batch of inserts over several users.
// Usage: java Defaults <port> <note> <user>...   Prints one JSON object.
import java.sql.*;
import java.util.*;

public class Defaults {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:mariadb://127.0.0.1:" + args[0] + "/trade?user=app&password=app";
        String note = args[1];
        List<String> users = Arrays.asList(args).subList(2, args.length);
        StringBuilder out = new StringBuilder("{");
        try (Connection conn = DriverManager.getConnection(url)) {
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, updated_at) "
                    + "VALUES (?, ?, 1, 3.25, ?, NOW(), NOW())")) {
                for (String user : users) {
                    ps.setLong(1, Long.parseLong(user));
                    ps.setLong(2, Long.parseLong(user) + 1);
                    ps.setString(3, note);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                out.append("\"batch\":").append(counts.length).append(",");
            }
            List<String> merchants = new ArrayList<>();
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT COUNT(*) FROM orders WHERE merchant_id = ? AND note = ?")) {
                for (String user : users) {
                    ps.setLong(1, Long.parseLong(user) + 1);
                    ps.setString(2, note);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        merchants.add(rs.getString(1));
                    }
                }
            }
            out.append("\"merchant_counts\":[").append(String.join(",", merchants)).append("],");
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT COUNT(*), MIN(user_id), MAX(user_id) FROM orders WHERE note = '"
                                                + note + "'")) {
                rs.next();
                out.append("\"scatter\":[").append(rs.getString(1)).append(",").append(rs.getString(2))
                   .append(",").append(rs.getString(3)).append("],");
            }
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT @@sql_mode")) {
                rs.next();
                out.append("\"sql_mode\":\"").append(rs.getString(1)).append("\"");
            }
        }
        System.out.println(out.append("}"));
    }
}
