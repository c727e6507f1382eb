// JDBC scenarios for sluice's MySQL tests, run with the MariaDB Connector/J from Debian's
// libmariadb-java as a single-file program:
//   java -cp /usr/share/java/mariadb-java-client.jar tests/jdbc/SluiceJdbc.java SCENARIO
// Connection from the environment: MY_PORT, MY_USER, MY_PASSWORD, MY_DB, MY_CA (TLS verified
// against this CA). Prints one JSON object with what the driver saw.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class SluiceJdbc {
    static String env(String k) {
        String v = System.getenv(k);
        if (v == null) throw new IllegalStateException(k + " is not set");
        return v;
    }

    static Connection connect(boolean serverPrepare) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", env("MY_USER"));
        p.setProperty("password", env("MY_PASSWORD"));
        p.setProperty("useSsl", "true");
        p.setProperty("serverSslCert", env("MY_CA"));
        p.setProperty("useServerPrepStmts", Boolean.toString(serverPrepare));
        p.setProperty("connectTimeout", "10000");
        String url = "jdbc:mariadb://127.0.0.1:" + env("MY_PORT") + "/" + env("MY_DB");
        return DriverManager.getConnection(url, p);
    }

    static String json(Object v) {
        if (v == null) return "null";
        if (v instanceof Number || v instanceof Boolean) return v.toString();
        if (v instanceof List) {
            StringBuilder b = new StringBuilder("[");
            for (Object o : (List<?>) v) {
                if (b.length() > 1) b.append(',');
                b.append(json(o));
            }
            return b.append(']').toString();
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : v.toString().toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static List<Object> rows(ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        List<Object> out = new ArrayList<>();
        while (rs.next()) {
            List<Object> row = new ArrayList<>();
            for (int i = 1; i <= md.getColumnCount(); i++) row.add(rs.getString(i));
            out.add(row);
        }
        return out;
    }

    static List<Object> error(SQLException e) {
        List<Object> l = new ArrayList<>();
        l.add(e.getErrorCode());
        l.add(e.getSQLState());
        l.add(e.getMessage());
        return l;
    }

    public static void main(String[] args) throws Exception {
        String scenario = args[0];
        StringBuilder out = new StringBuilder("{");
        switch (scenario) {
            case "statements": {
                try (Connection c = connect(false); Statement s = c.createStatement()) {
                    try (ResultSet rs = s.executeQuery(
                            "SELECT id, n, big, amount, ratio, d, ts, card, note FROM typed ORDER BY id")) {
                        out.append("\"text\":").append(json(rows(rs)));
                    }
                    try {
                        s.executeUpdate("DELETE FROM typed");
                    } catch (SQLException e) {
                        out.append(",\"denied\":").append(json(error(e)));
                    }
                    try (ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM typed")) {
                        out.append(",\"after_denial\":").append(json(rows(rs)));
                    }
                    try {
                        s.executeQuery("SELECT * FROM no_such_table");
                    } catch (SQLException e) {
                        out.append(",\"server_error\":").append(json(error(e)));
                    }
                }
                try (Connection c = connect(true);
                        PreparedStatement ps = c.prepareStatement(
                                "SELECT id, n, big, amount, ratio, d, ts, card, note FROM typed WHERE id >= ? AND note <> ? ORDER BY id")) {
                    ps.setInt(1, 1);
                    ps.setString(2, "zzz");
                    try (ResultSet rs = ps.executeQuery()) {
                        out.append(",\"prepared\":").append(json(rows(rs)));
                    }
                }
                break;
            }
            case "wrong_password": {
                try (Connection c = connect(false)) {
                    out.append("\"connected\":true");
                } catch (SQLException e) {
                    out.append("\"error\":").append(json(error(e)));
                }
                break;
            }
            default:
                throw new IllegalArgumentException("unknown scenario " + scenario);
        }
        System.out.println(out.append('}'));
    }
}
