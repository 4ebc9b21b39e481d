package io.casscdcpg.lwwsink;

import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.LongSupplier;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import io.casscdcpg.sink.RetryPolicy;

/**
 * Buffers each put() per target as COPY text, applies it in one transaction per
 * {@code batch.size} records, and reports to Connect only the offsets of committed
 * transactions. Applying is pipelined (decision 0135): a batch is applied on one applier thread
 * while put() converts the next one; at most one batch is in flight, and it is waited for before
 * the next is handed over, in preCommit(), close() and stop(). A record that cannot be converted
 * goes to the ErrantRecordReporter (the DLQ) and its offset commits with the batch; without a
 * reporter it fails the task. A batch PostgreSQL refuses for its data (SQLSTATE 22xxx/23xxx) is
 * halved until the bad record is alone; it goes to the reporter and the rest is applied. A
 * transient database failure closes the connection, keeps the failed batch (Connect redelivers
 * only the records of the put() that throws, not the batch applied in the background) and asks
 * Connect to redeliver that put() after a backoff (RetriableException + context.timeout, as
 * RetryingJdbcSinkTask does); the next put() applies the kept batch first. Replays are no-ops
 * under the LWW rules. After {@code cdc.retry.timeout.ms} of failures the task fails.
 */
public class LwwSinkTask extends SinkTask {

    private static final Logger LOG = LoggerFactory.getLogger(LwwSinkTask.class);

    private final LongSupplier clock;
    private final Applier.Factory factory;
    private final Map<TopicPartition, OffsetAndMetadata> committed = new HashMap<>();
    private LwwSinkConfig config;
    private RetryPolicy policy;
    private ErrantRecordReporter reporter;
    /** Opened, used and closed on the applier thread or on the task thread, never both at once. */
    private Applier applier;
    private ExecutorService executor;
    /** The chunk being applied on the applier thread (at most one). */
    private Chunk inFlight;
    /** The chunk a transient failure left unapplied: the next put() applies it first. */
    private Chunk failed;
    /** A non-retriable failure preCommit() or close() saw: the next put() throws it. */
    private RuntimeException fatal;
    private int attempt;
    private long failingSinceMs = -1;
    private int mismatches;
    private long mismatchSinceMs = -1;

    public LwwSinkTask() {
        this(System::currentTimeMillis, PgApplier::new);
    }

    LwwSinkTask(LongSupplier clock, Applier.Factory factory) {
        this.clock = clock;
        this.factory = factory;
    }

    @Override
    public String version() {
        return LwwSinkConnector.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        config = new LwwSinkConfig(props);
        policy = config.retry();
        reporter = errantReporter();
        executor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "lww-sink-applier");
            t.setDaemon(true);
            return t;
        });
    }

    private ErrantRecordReporter errantReporter() {
        if (context == null) {
            return null;
        }
        try {
            return context.errantRecordReporter(); // null unless errors.tolerance/DLQ are set
        } catch (NoSuchMethodError | NoClassDefFoundError e) {
            return null; // a worker older than Kafka 2.6
        }
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        if (fatal != null) {
            throw fatal; // a failure found by preCommit() or close(), which must not throw it
        }
        retryFailed();
        Chunk chunk = new Chunk();
        // read once per put(): a config lookup per record was ~2 % of the task thread (JFR, 0147)
        int batchSize = config.batchSize();
        for (SinkRecord record : records) {
            if (chunk.batch.records() >= batchSize) {
                submit(chunk);
                chunk = new Chunk();
            }
            if (add(chunk.batch, record, chunk.reported)) {
                chunk.members.add(record);
            }
        }
        if (!chunk.batch.isEmpty()) {
            submit(chunk); // left in flight: the next put() converts while it is applied
        }
        mismatches = 0;
        mismatchSinceMs = -1;
    }

    /**
     * Adds one record to the batch, or reports it; either way its offset is covered. True when
     * the record's row is in the batch.
     */
    boolean add(Batch batch, SinkRecord record, List<Future<Void>> reported) {
        boolean staged = false;
        if (record.value() != null) { // a Kafka tombstone carries no change (CassandraToRow drops them too)
            try {
                encode(batch, record);
                staged = true;
            } catch (DataException e) {
                if (reporter == null) {
                    throw e;
                }
                reported.add(reporter.report(record, e));
            } catch (SchemaMismatchException e) {
                throw retryLater(e);
            }
        }
        // offsets are the consumer's: before any SMT renamed the topic
        batch.covers(new TopicPartition(record.originalTopic(), record.originalKafkaPartition()),
                record.originalKafkaOffset());
        return staged;
    }

    private void encode(Batch batch, SinkRecord record) {
        String target = record.topic();
        TableSpec spec = config.tables().get(target);
        if (spec == null) {
            throw new DataException("no lww.table." + target + ".* settings for the record's topic "
                    + target + " (after the transforms): cdcctl renders one per captured table");
        }
        RowEncoder.append(batch.rowsOf(target), spec, record);
        batch.added(target);
    }

    /**
     * Hands the chunk to the applier thread once the chunk before it is settled (pipeline depth
     * 1, decision 0135): the previous chunk's failure is thrown here, before this one is applied.
     */
    private void submit(Chunk chunk) {
        awaitReports(chunk.reported); // a reported record is in the DLQ before its offset can commit
        settle();
        chunk.offsets.putAll(chunk.batch.nextOffsets());
        chunk.future = executor.submit(() -> {
            applyOnce(chunk.batch);
            return null;
        });
        inFlight = chunk;
    }

    /**
     * Waits for the chunk in flight, if any. Applied: its offsets become committable. Refused for
     * its data: the bad record(s) are isolated here, on the task thread. Failed otherwise: the
     * chunk is kept in {@link #failed} (Connect redelivers only the records of the put() that
     * throws, not this chunk's) and the failure is thrown.
     */
    private void settle() {
        Chunk chunk = inFlight;
        if (chunk == null) {
            return;
        }
        Throwable error;
        try {
            chunk.future.get();
            error = null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            // still in flight: a later settle() waits for it again
            throw new ConnectException("interrupted while waiting for the batch being applied", e);
        } catch (ExecutionException e) {
            error = e.getCause();
        }
        inFlight = null;
        if (error == null) {
            applied(chunk);
        } else {
            failed(chunk, error);
        }
    }

    /** Applies the chunk kept after a transient failure, first, on the task thread (nothing is in flight). */
    private void retryFailed() {
        Chunk chunk = failed;
        if (chunk == null) {
            return;
        }
        failed = null;
        try {
            applyOnce(chunk.batch);
        } catch (SQLException | RuntimeException e) {
            failed(chunk, e);
            return;
        }
        applied(chunk);
    }

    private void applied(Chunk chunk) {
        attempt = 0;
        failingSinceMs = -1;
        chunk.offsets.forEach((tp, next) -> committed.put(tp, new OffsetAndMetadata(next)));
    }

    private void failed(Chunk chunk, Throwable error) {
        closeApplier();
        if (!(error instanceof Exception e)) {
            throw new ConnectException("applying " + chunk.batch.records() + " records failed: " + error, error);
        }
        if (reporter != null && isDataError(e)) {
            // a value PostgreSQL refuses (0126 step 5): find it by halving, apply the rest,
            // send only the bad record(s) to the DLQ; the halves' order does not matter (LWW)
            LOG.warn("applying {} records to {} failed on their data ({}); isolating the bad record(s)",
                    chunk.batch.records(), chunk.batch.targets(), e.getMessage());
            try {
                isolate(chunk.members);
            } catch (SQLException | RuntimeException again) {
                closeApplier();
                hold(chunk, again); // a transient failure while halving: the whole chunk again, later
                return;
            }
            applied(chunk);
            return;
        }
        hold(chunk, e);
    }

    /** Throws the failure; a transient one keeps the chunk to be applied first by the next put(). */
    private void hold(Chunk chunk, Exception e) {
        RuntimeException f = failure(e, chunk.batch);
        if (f instanceof RetriableException) {
            failed = chunk;
        }
        throw f;
    }

    private void applyOnce(Batch batch) throws SQLException {
        if (applier == null) {
            applier = factory.open(config);
        }
        applier.apply(batch);
    }

    /**
     * Applies {@code records}, halving on data errors until single records go to the DLQ; throws
     * any other failure.
     */
    private void isolate(List<SinkRecord> records) throws SQLException {
        if (records.isEmpty()) {
            return;
        }
        Batch part = new Batch();
        for (SinkRecord r : records) {
            encode(part, r); // encoded once already: cannot fail now
            part.covers(new TopicPartition(r.originalTopic(), r.originalKafkaPartition()), r.originalKafkaOffset());
        }
        try {
            applyOnce(part);
            return;
        } catch (SQLException | RuntimeException e) {
            closeApplier();
            if (!isDataError(e)) {
                throw e;
            }
            if (records.size() == 1) {
                LOG.warn("record {}/{}@{} refused by PostgreSQL, sent to the dead letter queue: {}",
                        records.get(0).originalTopic(), records.get(0).originalKafkaPartition(),
                        records.get(0).originalKafkaOffset(), e.getMessage());
                awaitReports(List.of(reporter.report(records.get(0), e)));
                return;
            }
        }
        int half = records.size() / 2;
        isolate(records.subList(0, half));
        isolate(records.subList(half, records.size()));
    }

    /** A value the database refuses (SQLSTATE class 22 data exception, 23 integrity violation). */
    static boolean isDataError(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof SQLException sql && sql.getSQLState() != null) {
                String state = sql.getSQLState();
                return state.startsWith("22") || state.startsWith("23");
            }
        }
        return false;
    }

    private RuntimeException failure(Exception e, Batch batch) {
        String what = "applying " + batch.records() + " records to " + batch.targets();
        if (!RetryPolicy.isTransient(e)) {
            return new ConnectException(what + " failed: " + e.getMessage(), e);
        }
        long now = clock.getAsLong();
        if (failingSinceMs < 0) {
            failingSinceMs = now;
        }
        attempt++;
        if (!policy.withinTimeout(now - failingSinceMs)) {
            return new ConnectException(what + " kept failing for " + (now - failingSinceMs) + " ms (more than "
                    + RetryPolicy.TIMEOUT_MS + "=" + policy.timeoutMs() + "): " + e.getMessage(), e);
        }
        long wait = policy.backoffMs(attempt);
        LOG.warn("{} failed (attempt {}), retrying in {} ms: {}", what, attempt, wait, e.getMessage());
        if (context != null) {
            context.timeout(wait);
        }
        return new RetriableException(what + " failed, retrying: " + e.getMessage(), e);
    }

    /**
     * A record of a newer table schema than this task's SQL (decision 0139): nothing of this
     * put() from it on is applied, and Connect redelivers it after a backoff; the connector's new
     * config (cdcctl schema apply) restarts the task with the new columns. After
     * {@code cdc.retry.timeout.ms} the task fails, as for a database failure.
     */
    private RuntimeException retryLater(SchemaMismatchException e) {
        long now = clock.getAsLong();
        if (mismatchSinceMs < 0) {
            mismatchSinceMs = now;
        }
        mismatches++;
        if (!policy.withinTimeout(now - mismatchSinceMs)) {
            return new ConnectException(e.getMessage() + "; waited " + (now - mismatchSinceMs) + " ms (more than "
                    + RetryPolicy.TIMEOUT_MS + "=" + policy.timeoutMs() + ")", e);
        }
        long wait = policy.backoffMs(mismatches);
        LOG.warn("{} (attempt {}, retrying in {} ms)", e.getMessage(), mismatches, wait);
        if (context != null) {
            context.timeout(wait);
        }
        return new RetriableException(e.getMessage(), e);
    }

    private static void awaitReports(List<Future<Void>> reported) {
        for (Future<Void> f : reported) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ConnectException("interrupted while writing to the dead letter queue", e);
            } catch (ExecutionException e) {
                throw new ConnectException("writing to the dead letter queue failed: " + e.getCause(), e.getCause());
            }
        }
    }

    /**
     * Only offsets of committed transactions, for the partitions Connect asks about. Waits for
     * the chunk in flight first, so a flush covers everything put() returned for; a failure of it
     * is not thrown here (Connect would only log it): the next put() retries or throws it.
     */
    @Override
    public Map<TopicPartition, OffsetAndMetadata> preCommit(Map<TopicPartition, OffsetAndMetadata> currentOffsets) {
        settleQuietly("preCommit");
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        for (TopicPartition tp : currentOffsets.keySet()) {
            OffsetAndMetadata o = committed.get(tp);
            if (o != null) {
                out.put(tp, o);
            }
        }
        return out;
    }

    /**
     * Waits for the chunk in flight (a rebalance: Connect has called preCommit() just before),
     * then forgets the closed partitions. A chunk kept for retry keeps its rows (a replay is a
     * no-op under the LWW rules) but will not commit offsets of partitions this task no longer
     * owns: their new owner consumes them again from the last committed offset.
     */
    @Override
    public void close(Collection<TopicPartition> partitions) {
        settleQuietly("close");
        partitions.forEach(committed::remove);
        if (failed != null) {
            partitions.forEach(failed.offsets::remove);
        }
    }

    /** Waits for the chunk in flight (its offsets are not committed any more: it is redelivered). */
    @Override
    public void stop() {
        settleQuietly("stop");
        closeApplier();
        if (executor != null) {
            executor.shutdownNow();
        }
    }

    /** The committable offsets as they are, without waiting for the chunk in flight (tests). */
    Map<TopicPartition, OffsetAndMetadata> committedSoFar() {
        return Map.copyOf(committed);
    }

    private void settleQuietly(String when) {
        try {
            settle();
        } catch (RetriableException e) {
            LOG.debug("{}: the batch in flight failed, the next put() retries it: {}", when, e.getMessage());
        } catch (RuntimeException e) {
            if (fatal == null && inFlight == null) {
                fatal = e; // the task fails on the next put()
            }
            LOG.debug("{}: the batch in flight failed: {}", when, e.getMessage());
        }
    }

    private void closeApplier() {
        if (applier != null) {
            applier.close();
            applier = null;
        }
    }

    /** One batch with what its failure handling needs: its records and its DLQ reports. */
    private static final class Chunk {
        final Batch batch = new Batch();
        final List<SinkRecord> members = new ArrayList<>();
        final List<Future<Void>> reported = new ArrayList<>();
        /** The offsets it commits: set on submit, less the partitions closed while it waits for a retry. */
        final Map<TopicPartition, Long> offsets = new HashMap<>();
        Future<Void> future;
    }
}
