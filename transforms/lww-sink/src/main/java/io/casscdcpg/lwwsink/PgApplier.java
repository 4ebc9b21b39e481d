package io.casscdcpg.lwwsink;

import java.io.IOException;
import java.io.StringReader;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One PostgreSQL connection per task (a pool of 1) applying batches with the generated SQL:
 * session locks, then one REPEATABLE READ transaction of COPY into each target's staging table
 * (tombstones first), prepare and merge, commit, then unlock. REPEATABLE READ turns a concurrent
 * writer of the same row (DLQ replay, verify --repair, another sink) into a serialization
 * failure, which is transient: the batch is retried, and the LWW rules make the replay exact.
 */
final class PgApplier implements Applier {

    private static final Logger LOG = LoggerFactory.getLogger(PgApplier.class);

    private final Map<String, TableSpec> specs;
    private final Connection conn;
    private final CopyManager copy;

    PgApplier(LwwSinkConfig config) throws SQLException {
        this.specs = config.tables();
        Properties props = new Properties();
        props.setProperty("user", config.user());
        if (config.password() != null) {
            props.setProperty("password", config.password());
        }
        // the driver directly, not DriverManager: the plugin's class loader owns pgjdbc
        Connection c = new org.postgresql.Driver().connect(config.url(), props);
        if (c == null) {
            throw new SQLException("not a PostgreSQL JDBC URL: " + config.url().replaceAll("\\?.*", "?..."));
        }
        this.conn = c;
        try {
            conn.setAutoCommit(true);
            try (Statement st = conn.createStatement()) {
                for (TableSpec spec : specs.values()) {
                    st.execute(spec.stageSql());
                }
            }
            conn.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
            this.copy = conn.unwrap(PGConnection.class).getCopyAPI();
        } catch (SQLException e) {
            close();
            throw e;
        }
    }

    @Override
    public void apply(Batch batch) throws SQLException {
        List<TableSpec> targets = new ArrayList<>();
        for (String t : batch.targets()) {
            targets.add(specs.get(t));
        }
        List<TableSpec> locked = new ArrayList<>();
        try (Statement st = conn.createStatement()) {
            st.setEscapeProcessing(false); // the SQL is PostgreSQL's, no JDBC {fn ...} escapes in it
            List<TableSpec> byName = new ArrayList<>(targets);
            byName.sort(Comparator.comparing(TableSpec::target)); // one lock order for every task
            for (TableSpec spec : byName) {
                if (!spec.lockSql().isEmpty()) {
                    st.execute(spec.lockSql());
                    locked.add(spec);
                }
            }
            conn.setAutoCommit(false);
            try {
                for (TableSpec spec : targets) {
                    long copied = copy.copyIn(spec.copySql(), new StringReader(batch.text(spec.target())));
                    if (copied != batch.rowCount(spec.target())) {
                        throw new SQLException("COPY into the staging table of " + spec.target() + " took " + copied
                                + " rows, expected " + batch.rowCount(spec.target()));
                    }
                    if (!spec.prepareSql().isEmpty()) {
                        st.execute(spec.prepareSql());
                    }
                    st.execute(spec.mergeSql());
                }
                conn.commit();
            } catch (SQLException | RuntimeException e) {
                rollbackQuietly();
                throw e;
            } catch (IOException e) {
                rollbackQuietly(); // reading a StringReader: not a database failure
                throw new SQLException("COPY failed: " + e.getMessage(), e);
            } finally {
                conn.setAutoCommit(true);
            }
        } finally {
            unlock(locked);
        }
    }

    private void unlock(List<TableSpec> locked) {
        if (locked.isEmpty()) {
            return;
        }
        try (Statement st = conn.createStatement()) {
            for (TableSpec spec : locked) {
                st.execute(spec.unlockSql());
            }
        } catch (SQLException e) {
            // a broken connection released its session locks with it; the applier is closed next
            LOG.debug("unlock failed (the connection is closed next): {}", e.getMessage());
        }
    }

    private void rollbackQuietly() {
        try {
            conn.rollback();
        } catch (SQLException e) {
            LOG.debug("rollback failed: {}", e.getMessage());
        }
    }

    @Override
    public void close() {
        try {
            conn.close();
        } catch (SQLException e) {
            LOG.debug("close failed: {}", e.getMessage());
        }
    }
}
