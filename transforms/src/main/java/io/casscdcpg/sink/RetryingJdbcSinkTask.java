package io.casscdcpg.sink;

import java.lang.reflect.Method;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongSupplier;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.SinkConnector;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Debezium JDBC sink task that survives PostgreSQL going away.
 *
 * <p>The stock task fails for good on the first broken connection: its flush retries cover only
 * Hibernate's JDBCConnectionException and only with {@code connection.restart.on.errors=true}, the
 * table-metadata read before a flush is not retried at all, a server shutdown (SQLSTATE 57P01)
 * is a GenericJDBCException, and after one failure the task refuses every later put. So this task
 * wraps a Debezium task and, when a put fails with a transient cause ({@link RetryPolicy#isTransient}):
 * stops that task (closing its connection pool), asks Connect to redeliver the same batch after a
 * backoff ({@code context.timeout} + {@link RetriableException}: Connect pauses the partitions and
 * keeps polling, so the consumer stays in its group) and starts a fresh Debezium task for the next
 * attempt. Replaying a batch is safe: the LWW gate in PostgreSQL makes duplicates no-ops. After
 * {@code cdc.retry.timeout.ms} of failures the task fails as before (the reconciler restarts it).
 */
public class RetryingJdbcSinkTask extends SinkTask {

    static final String VERSION = "0.1.0";
    private static final Logger LOG = LoggerFactory.getLogger(RetryingJdbcSinkTask.class);

    private final LongSupplier clock;
    private final DelegateFactory factory;
    private final Set<TopicPartition> assigned = new HashSet<>();
    private Map<String, String> props;
    private RetryPolicy policy;
    private SinkTask delegate;
    private int attempt;
    private long failingSinceMs = -1;
    /** A Debezium task started with these settings once: a later start that fails is the database's fault. */
    private boolean startedOnce;
    private long nextAttemptAtMs;

    /** Makes the wrapped task (a seam for tests). */
    interface DelegateFactory {
        SinkTask create();
    }

    public RetryingJdbcSinkTask() {
        this(System::currentTimeMillis, RetryingJdbcSinkTask::debeziumTask);
    }

    RetryingJdbcSinkTask(LongSupplier clock, DelegateFactory factory) {
        this.clock = clock;
        this.factory = factory;
    }

    private static SinkTask debeziumTask() {
        SinkConnector connector = Delegate.instantiate(Delegate.connectorClass(), SinkConnector.class);
        return Delegate.instantiate(connector.taskClass(), SinkTask.class);
    }

    @Override
    public String version() {
        return VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        this.props = Map.copyOf(props);
        this.policy = RetryPolicy.from(this.props);
        try {
            startDelegate();
        } catch (RuntimeException e) {
            if (!RetryPolicy.isTransient(e)) {
                throw e;
            }
            // PostgreSQL is away right now: start anyway, the first put retries (with backoff).
            LOG.warn("JDBC sink task could not start ({}); retrying when records arrive", rootMessage(e));
            noteFailure();
        }
    }

    private void startDelegate() {
        SinkTask task = factory.create();
        task.initialize(context);
        try {
            Delegate.run(task, () -> task.start(props));
            if (!assigned.isEmpty()) {
                Set<TopicPartition> partitions = Set.copyOf(assigned);
                Delegate.run(task, () -> task.open(partitions));
            }
        } catch (RuntimeException e) {
            stopQuietly(task);
            throw e;
        }
        delegate = task;
        startedOnce = true;
    }

    @Override
    public void open(Collection<TopicPartition> partitions) {
        assigned.addAll(partitions);
        SinkTask d = delegate;
        if (d != null) {
            Delegate.run(d, () -> d.open(partitions));
        }
    }

    @Override
    public void close(Collection<TopicPartition> partitions) {
        assigned.removeAll(partitions);
        SinkTask d = delegate;
        if (d != null) {
            Delegate.run(d, () -> d.close(partitions));
        }
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        long now = clock.getAsLong();
        if (delegate == null && failingSinceMs >= 0 && now < nextAttemptAtMs) {
            // Connect may redeliver sooner than context.timeout asked: its poll also wakes for the
            // next offset commit (offset.flush.interval.ms). Wait out the backoff without touching
            // the database.
            context.timeout(nextAttemptAtMs - now);
            throw new RetriableException("PostgreSQL unreachable; next attempt in " + (nextAttemptAtMs - now) + " ms");
        }
        try {
            if (delegate == null) {
                startDelegate();
            }
            SinkTask d = delegate;
            Delegate.run(d, () -> d.put(records));
            // Debezium's put() catches a failure, remembers it and returns normally: Connect
            // would count the batch as delivered and move on. A failed batch must be redelivered.
            Throwable swallowed = lastProcessingException(d);
            if (swallowed != null) {
                throw new ConnectException("JDBC sink connector failure", swallowed);
            }
        } catch (RetriableException e) {
            throw e;
        } catch (RuntimeException e) {
            // Restarting a task whose settings worked before fails only because PostgreSQL is away
            // (Hibernate then says "Unable to determine Dialect without JDBC metadata", no SQLSTATE).
            if (!RetryPolicy.isTransient(e) && !(startedOnce && delegate == null)) {
                throw e;
            }
            retryLater(e, records.size());
        }
        if (attempt > 0) {
            LOG.info("JDBC sink writes again after {} failed attempt(s) over {} ms", attempt,
                    clock.getAsLong() - failingSinceMs);
            attempt = 0;
            failingSinceMs = -1;
        }
    }

    private void noteFailure() {
        if (failingSinceMs < 0) {
            failingSinceMs = clock.getAsLong();
        }
        attempt++;
    }

    private void retryLater(RuntimeException cause, int batch) {
        if (delegate != null) {
            stopQuietly(delegate);
            delegate = null;
        }
        noteFailure();
        long failingFor = clock.getAsLong() - failingSinceMs;
        if (!policy.withinTimeout(failingFor)) {
            throw new ConnectException("PostgreSQL unreachable for " + failingFor + " ms (" + attempt
                    + " attempts; " + RetryPolicy.TIMEOUT_MS + "=" + policy.timeoutMs() + "): giving up", cause);
        }
        long wait = policy.backoffMs(attempt);
        nextAttemptAtMs = clock.getAsLong() + wait;
        context.timeout(wait);
        LOG.warn("JDBC sink: PostgreSQL unreachable ({}); batch of {} record(s) retried in {} ms (attempt {}, "
                + "failing for {} ms)", rootMessage(cause), batch, wait, attempt, failingFor);
        throw new RetriableException("PostgreSQL unreachable; retrying in " + wait + " ms", cause);
    }

    @Override
    public Map<TopicPartition, OffsetAndMetadata> preCommit(Map<TopicPartition, OffsetAndMetadata> currentOffsets) {
        SinkTask d = delegate;
        if (d == null) {
            return Map.of(); // nothing written since the last commit is known: commit nothing
        }
        return Delegate.in(d, () -> d.preCommit(currentOffsets));
    }

    @Override
    public void stop() {
        if (delegate != null) {
            stopQuietly(delegate);
            delegate = null;
        }
    }

    private static void stopQuietly(SinkTask task) {
        try {
            Delegate.run(task, task::stop);
        } catch (RuntimeException e) {
            LOG.debug("stopping the failed JDBC sink task", e);
        }
    }

    /** Debezium's {@code JdbcSinkConnectorTask.getLastProcessingException()}, null without it. */
    static Throwable lastProcessingException(SinkTask task) {
        try {
            Method getter = task.getClass().getMethod("getLastProcessingException");
            return getter.invoke(task) instanceof Throwable t ? t : null;
        } catch (NoSuchMethodException e) {
            return null;
        } catch (ReflectiveOperationException e) {
            throw new ConnectException("cannot ask the JDBC sink task for its last failure", e);
        }
    }

    static String rootMessage(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root.getClass().getSimpleName() + ": " + root.getMessage();
    }

    // visible for tests
    int attempt() {
        return attempt;
    }

    boolean hasDelegate() {
        return delegate != null;
    }

    static List<String> settings() {
        return List.of(RetryPolicy.TIMEOUT_MS, RetryPolicy.BACKOFF_INITIAL_MS, RetryPolicy.BACKOFF_MAX_MS);
    }
}
