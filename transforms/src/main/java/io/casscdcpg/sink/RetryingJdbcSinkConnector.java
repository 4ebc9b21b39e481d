package io.casscdcpg.sink;

import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

/**
 * The Debezium JDBC sink, unchanged, with tasks that wait out a PostgreSQL outage instead of
 * failing on the first broken connection ({@link RetryingJdbcSinkTask}; decision 0103). Every
 * setting is Debezium's, plus {@code cdc.retry.*} ({@link RetryPolicy}).
 */
public class RetryingJdbcSinkConnector extends SinkConnector {

    private SinkConnector delegate;

    private SinkConnector delegate() {
        if (delegate == null) {
            delegate = Delegate.instantiate(Delegate.connectorClass(), SinkConnector.class);
        }
        return delegate;
    }

    @Override
    public String version() {
        // Called while Connect scans plugins, before Debezium's loader may be registered: constant.
        return RetryingJdbcSinkTask.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        RetryPolicy.from(props); // refuse bad cdc.retry.* values when the connector starts
        SinkConnector d = delegate();
        d.initialize(context());
        Delegate.run(d, () -> d.start(props));
    }

    @Override
    public Class<? extends Task> taskClass() {
        return RetryingJdbcSinkTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        SinkConnector d = delegate();
        return Delegate.in(d, () -> d.taskConfigs(maxTasks));
    }

    @Override
    public void stop() {
        if (delegate != null) {
            SinkConnector d = delegate;
            Delegate.run(d, d::stop);
        }
    }

    @Override
    public ConfigDef config() {
        SinkConnector d = delegate();
        ConfigDef def = new ConfigDef(Delegate.in(d, d::config));
        return define(def);
    }

    static ConfigDef define(ConfigDef def) {
        return def
                .define(RetryPolicy.TIMEOUT_MS, ConfigDef.Type.LONG, RetryPolicy.DEFAULT_TIMEOUT_MS,
                        ConfigDef.Range.atLeast(-1), ConfigDef.Importance.MEDIUM,
                        "How long a task keeps retrying while PostgreSQL is unreachable (connection "
                                + "refused/lost, shutting down, starting up) before it fails; -1 retries forever.")
                .define(RetryPolicy.BACKOFF_INITIAL_MS, ConfigDef.Type.LONG, RetryPolicy.DEFAULT_BACKOFF_INITIAL_MS,
                        ConfigDef.Range.atLeast(1), ConfigDef.Importance.LOW,
                        "Wait before the first retry; doubled after each failed attempt.")
                .define(RetryPolicy.BACKOFF_MAX_MS, ConfigDef.Type.LONG, RetryPolicy.DEFAULT_BACKOFF_MAX_MS,
                        ConfigDef.Range.atLeast(1), ConfigDef.Importance.LOW,
                        "The longest wait between two retries (bounds how late the sink notices that "
                                + "PostgreSQL is back).");
    }
}
