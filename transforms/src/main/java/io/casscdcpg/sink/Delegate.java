package io.casscdcpg.sink;

import org.apache.kafka.connect.errors.ConnectException;

/**
 * Finds Debezium's JDBC sink classes. They live in the Debezium plugin's own class loader; asking
 * ours for the connector's name makes Connect's DelegatingClassLoader (our loader's parent) hand
 * out the class from the plugin that registered it, so this jar needs no Debezium jar beside it.
 */
final class Delegate {

    static final String JDBC_SINK_CONNECTOR = "io.debezium.connector.jdbc.JdbcSinkConnector";

    private Delegate() {
    }

    static Class<?> connectorClass() {
        try {
            return Class.forName(JDBC_SINK_CONNECTOR, true, Delegate.class.getClassLoader());
        } catch (ClassNotFoundException | LinkageError e) {
            throw new ConnectException("the Debezium JDBC sink (" + JDBC_SINK_CONNECTOR + ") is not installed on "
                    + "this worker's plugin.path; RetryingJdbcSinkConnector delegates to it", e);
        }
    }

    static <T> T instantiate(Class<?> type, Class<T> as) {
        try {
            return as.cast(type.getDeclaredConstructor().newInstance());
        } catch (ReflectiveOperationException e) {
            throw new ConnectException("cannot instantiate " + type.getName(), e);
        }
    }

    /** Runs {@code body} with the delegate's loader as the thread's context class loader. */
    static <T> T in(Object delegate, java.util.function.Supplier<T> body) {
        Thread thread = Thread.currentThread();
        ClassLoader saved = thread.getContextClassLoader();
        thread.setContextClassLoader(delegate.getClass().getClassLoader());
        try {
            return body.get();
        } finally {
            thread.setContextClassLoader(saved);
        }
    }

    static void run(Object delegate, Runnable body) {
        in(delegate, () -> {
            body.run();
            return null;
        });
    }
}
