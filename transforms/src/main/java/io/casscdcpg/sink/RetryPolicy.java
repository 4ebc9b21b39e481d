package io.casscdcpg.sink;

import java.io.EOFException;
import java.net.SocketException;
import java.sql.SQLException;
import java.sql.SQLRecoverableException;
import java.sql.SQLTransientConnectionException;
import java.sql.SQLNonTransientConnectionException;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Which failures of the JDBC sink are worth waiting out, and how long to wait between attempts
 * (docs/decisions/0103-sink-rides-through-postgres-outages.md). Pure: no clock, no I/O.
 *
 * <p>Transient: the database is unreachable, shutting down, starting up or in recovery, or a
 * transaction lost a serialization/deadlock race. Everything else (a constraint, a type, a
 * permission error) fails the task as before, so data errors stay visible.
 */
public final class RetryPolicy {

    /** Hibernate's connection-failure exception; matched by name (no compile-time dependency). */
    static final String HIBERNATE_CONNECTION_EXCEPTION = "org.hibernate.exception.JDBCConnectionException";

    static final String HIBERNATE_NO_METADATA = "Unable to determine Dialect without JDBC metadata";

    private final long initialBackoffMs;
    private final long maxBackoffMs;
    private final long timeoutMs;

    public RetryPolicy(long initialBackoffMs, long maxBackoffMs, long timeoutMs) {
        if (initialBackoffMs < 1 || maxBackoffMs < initialBackoffMs) {
            throw new IllegalArgumentException(
                    "need 1 <= initial backoff (" + initialBackoffMs + ") <= max backoff (" + maxBackoffMs + ")");
        }
        this.initialBackoffMs = initialBackoffMs;
        this.maxBackoffMs = maxBackoffMs;
        this.timeoutMs = timeoutMs;
    }

    /** The wait before attempt {@code attempt + 1} (attempt counts from 1): doubling, capped. */
    public long backoffMs(int attempt) {
        long wait = initialBackoffMs;
        for (int i = 1; i < attempt && wait < maxBackoffMs; i++) {
            wait *= 2;
        }
        return Math.min(wait, maxBackoffMs);
    }

    /** Whether failures that began {@code failingForMs} ago may still be retried (-1: forever). */
    public boolean withinTimeout(long failingForMs) {
        return timeoutMs < 0 || failingForMs < timeoutMs;
    }

    public long timeoutMs() {
        return timeoutMs;
    }

    /** True when {@code error} or one of its causes says the database is (temporarily) away. */
    public static boolean isTransient(Throwable error) {
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<Throwable, Boolean>());
        for (Throwable t = error; t != null && seen.add(t); t = t.getCause()) {
            if (transientItself(t)) {
                return true;
            }
            if (t instanceof SQLException sql) {
                for (SQLException next = sql.getNextException(); next != null && seen.add(next);
                        next = next.getNextException()) {
                    if (transientItself(next)) {
                        return true;
                    }
                }
            }
        }
        return false;
    }

    private static boolean transientItself(Throwable t) {
        if (t instanceof SQLTransientConnectionException || t instanceof SQLNonTransientConnectionException
                || t instanceof SQLRecoverableException || t instanceof SocketException
                || t instanceof EOFException || isA(t.getClass(), HIBERNATE_CONNECTION_EXCEPTION)) {
            return true;
        }
        if (t instanceof SQLException sql) {
            return transientSqlState(sql.getSQLState());
        }
        // Hibernate's bootstrap when it could not open a connection to read the JDBC metadata.
        String message = t.getMessage();
        return message != null && message.contains(HIBERNATE_NO_METADATA);
    }

    /**
     * SQLSTATEs of a database that is away for now: class 08 (connection exception: refused,
     * broken, lost), 57P01..57P03 (admin/crash shutdown, "the database system is starting up"),
     * 53300 (too many connections), 40001/40P01 (serialization failure, deadlock: the LWW gate
     * makes a replay of the batch a no-op).
     */
    static boolean transientSqlState(String state) {
        if (state == null) {
            return false;
        }
        return state.startsWith("08") || state.equals("57P01") || state.equals("57P02") || state.equals("57P03")
                || state.equals("53300") || state.equals("40001") || state.equals("40P01");
    }

    private static boolean isA(Class<?> type, String name) {
        for (Class<?> c = type; c != null; c = c.getSuperclass()) {
            if (c.getName().equals(name)) {
                return true;
            }
        }
        return false;
    }

    /** The settings' names, defaults and documentation (also the connector's ConfigDef). */
    public static final String TIMEOUT_MS = "cdc.retry.timeout.ms";
    public static final String BACKOFF_INITIAL_MS = "cdc.retry.backoff.initial.ms";
    public static final String BACKOFF_MAX_MS = "cdc.retry.backoff.max.ms";
    public static final long DEFAULT_TIMEOUT_MS = 600_000L;
    public static final long DEFAULT_BACKOFF_INITIAL_MS = 1_000L;
    public static final long DEFAULT_BACKOFF_MAX_MS = 15_000L;

    static long longSetting(Map<String, String> props, String key, long fallback) {
        String value = props.get(key);
        if (value == null || value.isBlank()) {
            return fallback;
        }
        try {
            return Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " must be an integer, got '" + value + "'", e);
        }
    }

    public static RetryPolicy from(Map<String, String> props) {
        return new RetryPolicy(
                longSetting(props, BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_INITIAL_MS),
                longSetting(props, BACKOFF_MAX_MS, DEFAULT_BACKOFF_MAX_MS),
                longSetting(props, TIMEOUT_MS, DEFAULT_TIMEOUT_MS));
    }
}
