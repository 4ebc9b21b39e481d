package io.casscdcpg.lwwsink;

import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
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
 * transactions. A record that cannot be converted goes to the ErrantRecordReporter (the DLQ)
 * and its offset commits with the batch; without a reporter it fails the task. A batch PostgreSQL
 * refuses for its data (SQLSTATE 22xxx/23xxx) is halved until the bad record is alone; it goes to
 * the reporter and the rest is applied. A transient
 * database failure closes the connection and asks Connect to redeliver the same records after a
 * backoff (RetriableException + context.timeout, as RetryingJdbcSinkTask does): replays are no-ops
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
    private Applier applier;
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
        Batch batch = new Batch();
        List<SinkRecord> members = new ArrayList<>();
        List<Future<Void>> reported = new ArrayList<>();
        for (SinkRecord record : records) {
            if (batch.records() >= config.batchSize()) {
                apply(batch, members, reported);
                batch = new Batch();
                members = new ArrayList<>();
                reported = new ArrayList<>();
            }
            if (add(batch, record, reported)) {
                members.add(record);
            }
        }
        if (!batch.isEmpty()) {
            apply(batch, members, reported);
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

    private void apply(Batch batch, List<SinkRecord> members, List<Future<Void>> reported) {
        awaitReports(reported); // a reported record is in the DLQ before its offset can commit
        try {
            applyOnce(batch);
        } catch (SQLException | RuntimeException e) {
            closeApplier();
            if (reporter == null || !isDataError(e)) {
                throw failure(e, batch);
            }
            // a value PostgreSQL refuses (0126 step 5): find it by halving, apply the rest,
            // send only the bad record(s) to the DLQ; the halves' order does not matter (LWW)
            LOG.warn("applying {} records to {} failed on their data ({}); isolating the bad record(s)",
                    batch.records(), batch.targets(), e.getMessage());
            isolate(members);
        }
        attempt = 0;
        failingSinceMs = -1;
        batch.nextOffsets().forEach((tp, next) -> committed.put(tp, new OffsetAndMetadata(next)));
    }

    private void applyOnce(Batch batch) throws SQLException {
        if (applier == null) {
            applier = factory.open(config);
        }
        applier.apply(batch);
    }

    /** Applies {@code records}, halving on data errors until single records go to the DLQ. */
    private void isolate(List<SinkRecord> records) {
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
                throw failure(e, part); // transient: Connect redelivers the put(), replays are no-ops
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

    /** Only offsets of committed transactions, for the partitions Connect asks about. */
    @Override
    public Map<TopicPartition, OffsetAndMetadata> preCommit(Map<TopicPartition, OffsetAndMetadata> currentOffsets) {
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        for (TopicPartition tp : currentOffsets.keySet()) {
            OffsetAndMetadata o = committed.get(tp);
            if (o != null) {
                out.put(tp, o);
            }
        }
        return out;
    }

    @Override
    public void close(Collection<TopicPartition> partitions) {
        partitions.forEach(committed::remove);
    }

    @Override
    public void stop() {
        closeApplier();
    }

    private void closeApplier() {
        if (applier != null) {
            applier.close();
            applier = null;
        }
    }
}
