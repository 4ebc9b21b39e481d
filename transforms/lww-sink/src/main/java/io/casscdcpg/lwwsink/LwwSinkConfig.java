package io.casscdcpg.lwwsink;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.types.Password;

import io.casscdcpg.sink.RetryPolicy;

/**
 * The sink's settings. Connection settings keep the Debezium JDBC sink's names (cdcctl renders
 * them the same way: TLS in the URL, the password as a config-provider placeholder the worker
 * resolves); retry settings are {@link RetryPolicy}'s. Per target, cdcctl supplies the generated
 * SQL under {@code lww.table.<target>.<part>} (controlplane.core.render.lww_sink_tables_config).
 */
public final class LwwSinkConfig extends AbstractConfig {

    public static final String URL = "connection.url";
    public static final String USER = "connection.username";
    public static final String PASSWORD = "connection.password";  // pragma: allowlist secret
    public static final String BATCH_SIZE = "batch.size";
    public static final int DEFAULT_BATCH_SIZE = 500;
    public static final String TABLES = "lww.tables";
    public static final String TABLE_PREFIX = "lww.table.";
    public static final String TOMBSTONES_SUFFIX = "__tombstones";

    static final List<String> PARTS = List.of("columns", "stage", "copy", "lock", "prepare", "merge", "unlock");
    private static final List<String> REQUIRED = List.of("columns", "stage", "copy", "merge");

    public static final ConfigDef CONFIG_DEF = new ConfigDef()
            .define(URL, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, new ConfigDef.NonEmptyString(), Importance.HIGH,
                    "pgjdbc URL of the PostgreSQL database (TLS settings included)")
            .define(USER, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, Importance.HIGH, "PostgreSQL user")
            .define(PASSWORD, Type.PASSWORD, null, Importance.HIGH,
                    "PostgreSQL password, normally a config-provider placeholder")
            .define(BATCH_SIZE, Type.INT, DEFAULT_BATCH_SIZE, ConfigDef.Range.atLeast(1), Importance.MEDIUM,
                    "most records applied in one transaction; a larger put() is split")
            .define(TABLES, Type.LIST, ConfigDef.NO_DEFAULT_VALUE, Importance.HIGH,
                    "the targets (record topics after routing); each needs lww.table.<target>.* settings")
            .define(RetryPolicy.TIMEOUT_MS, Type.LONG, RetryPolicy.DEFAULT_TIMEOUT_MS, Importance.MEDIUM,
                    "how long transient database failures are retried before the task fails (-1: forever)")
            .define(RetryPolicy.BACKOFF_INITIAL_MS, Type.LONG, RetryPolicy.DEFAULT_BACKOFF_INITIAL_MS,
                    ConfigDef.Range.atLeast(1), Importance.LOW, "first wait before a retry, doubling")
            .define(RetryPolicy.BACKOFF_MAX_MS, Type.LONG, RetryPolicy.DEFAULT_BACKOFF_MAX_MS,
                    ConfigDef.Range.atLeast(1), Importance.LOW, "longest wait between retries");

    private final Map<String, TableSpec> tables;
    private final RetryPolicy retry;

    public LwwSinkConfig(Map<String, String> props) {
        super(CONFIG_DEF, props);
        this.tables = parseTables(getList(TABLES), props);
        try {
            this.retry = RetryPolicy.from(props);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(e.getMessage());
        }
    }

    static Map<String, TableSpec> parseTables(List<String> targets, Map<String, String> props) {
        Map<String, TableSpec> out = new LinkedHashMap<>();
        for (String target : targets) {
            String prefix = TABLE_PREFIX + target + ".";
            Map<String, String> parts = new LinkedHashMap<>();
            for (String part : PARTS) {
                String value = props.getOrDefault(prefix + part, "");
                if (REQUIRED.contains(part) && value.isBlank()) {
                    throw new ConfigException(prefix + part, value,
                            "missing: cdcctl renders it from the table's schema (controlplane.core.ddl)");
                }
                parts.put(part, value);
            }
            if (out.put(target, new TableSpec(target, decodeColumns(prefix + "columns", parts.get("columns")),
                    parts.get("stage"), parts.get("copy"), parts.get("lock"), parts.get("prepare"),
                    parts.get("merge"), parts.get("unlock"))) != null) {
                throw new ConfigException(TABLES, targets, "target " + target + " is listed twice");
            }
        }
        return out;
    }

    /** Comma-separated, each name percent-encoded as UTF-8 (Python's urllib.parse.quote(safe="")). */
    static List<String> decodeColumns(String key, String value) {
        List<String> out = new ArrayList<>();
        for (String item : value.split(",", -1)) {
            if (item.isEmpty()) {
                throw new ConfigException(key, value, "an empty column name");
            }
            try {
                // '+' never occurs in the encoded form (quote() writes %2B), so URLDecoder's
                // form-decoding of '+' as a space cannot change a name
                out.add(URLDecoder.decode(item, StandardCharsets.UTF_8));
            } catch (IllegalArgumentException e) {
                throw new ConfigException(key, value, "not percent-encoded: " + e.getMessage());
            }
        }
        return List.copyOf(out);
    }

    public String url() {
        return getString(URL);
    }

    public String user() {
        return getString(USER);
    }

    /** The password, or null. */
    public String password() {
        Password p = getPassword(PASSWORD);
        return p == null ? null : p.value();
    }

    public int batchSize() {
        return getInt(BATCH_SIZE);
    }

    public Map<String, TableSpec> tables() {
        return tables;
    }

    public RetryPolicy retry() {
        return retry;
    }
}
