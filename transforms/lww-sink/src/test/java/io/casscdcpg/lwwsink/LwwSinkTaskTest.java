package io.casscdcpg.lwwsink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Proxy;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTaskContext;
import org.junit.jupiter.api.Test;

class LwwSinkTaskTest {

    static final TopicPartition TP = new TopicPartition("orders", 0);

    /** Applies into a list; fails as told. */
    static final class FakeApplier implements Applier {
        final List<String> applied = new ArrayList<>();
        final List<SQLException> failures = new ArrayList<>();
        int opened;
        int closed;
        int attempts;
        /** When set, apply() counts down {@code started} and waits for {@code release}. */
        volatile CountDownLatch started;
        volatile CountDownLatch release;

        @Override
        public void apply(Batch batch) throws SQLException {
            CountDownLatch wait = release;
            if (wait != null) {
                started.countDown();
                try {
                    wait.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new SQLException("interrupted", "57014");
                }
            }
            if (!failures.isEmpty()) {
                throw failures.remove(0);
            }
            for (String t : batch.targets()) {
                if (batch.text(t).contains("poison")) {
                    attempts++;
                    throw new SQLException("value too long for type character varying(3)", "22001");
                }
            }
            for (String t : batch.targets()) {
                applied.add(t + ":" + batch.text(t));
            }
        }

        @Override
        public void close() {
            closed++;
        }
    }

    final FakeApplier db = new FakeApplier();
    final AtomicLong now = new AtomicLong(0);
    final List<Long> timeouts = new ArrayList<>();
    final List<SinkRecord> dlq = new ArrayList<>();

    LwwSinkTask task(Map<String, String> extra, boolean withReporter) {
        LwwSinkTask t = new LwwSinkTask(now::get, config -> {
            db.opened++;
            return db;
        });
        ErrantRecordReporter reporter = (record, error) -> {
            dlq.add(record);
            return CompletableFuture.completedFuture(null);
        };
        t.initialize((SinkTaskContext) Proxy.newProxyInstance(getClass().getClassLoader(),
                new Class<?>[] {SinkTaskContext.class}, (proxy, method, args) -> {
                    if (method.getName().equals("timeout")) {
                        timeouts.add((Long) args[0]);
                        return null;
                    }
                    if (method.getName().equals("errantRecordReporter")) {
                        return withReporter ? reporter : null;
                    }
                    return null;
                }));
        Map<String, String> props = new java.util.HashMap<>(LwwSinkConfigTest.props());
        props.put("lww.table.orders.columns", "id,note");
        props.putAll(extra);
        t.start(props);
        return t;
    }

    static SinkRecord row(int id, String note, long offset) {
        SinkRecord r = RowEncoderTest.row(id, note, 1);
        return new SinkRecord("orders", 0, r.keySchema(), r.key(), r.valueSchema(), r.value(), offset);
    }

    static Map<TopicPartition, OffsetAndMetadata> asked() {
        return Map.of(TP, new OffsetAndMetadata(999));
    }

    static SinkRecord row(int id, String note, long offset, int partition) {
        SinkRecord r = RowEncoderTest.row(id, note, 1);
        return new SinkRecord("orders", partition, r.keySchema(), r.key(), r.valueSchema(), r.value(), offset);
    }

    /** Makes the next applies wait in the fake until {@link #release()}; returns the started latch. */
    CountDownLatch holdApplies() {
        db.started = new CountDownLatch(1);
        db.release = new CountDownLatch(1);
        return db.started;
    }

    void release() {
        CountDownLatch r = db.release;
        db.release = null;
        r.countDown();
    }

    static void await(CountDownLatch latch) throws InterruptedException {
        assertTrue(latch.await(30, TimeUnit.SECONDS), "the applier thread never started the batch");
    }

    @Test
    void appliesPerBatchSizeAndCommitsOffsetsOnlyAfterwards() {
        LwwSinkTask t = task(Map.of("batch.size", "2"), true);
        assertEquals(Map.of(), t.preCommit(asked()));
        t.put(List.of(row(1, "a", 10), row(2, "b", 11), row(3, "c", 12)));
        assertEquals(Map.of(TP, new OffsetAndMetadata(13)), t.preCommit(asked())); // waits for the last batch
        assertEquals(List.of("orders:1\ta\n2\tb\n", "orders:3\tc\n"), db.applied);
        assertEquals(1, db.opened); // one connection per task, kept
        t.close(List.of(TP));
        assertEquals(Map.of(), t.preCommit(asked()));
    }

    @Test
    void putReturnsWhileItsLastBatchIsAppliedAndItsOffsetsCommitOnlyAfterwards() throws Exception {
        LwwSinkTask t = task(Map.of(), true);
        CountDownLatch started = holdApplies();
        t.put(List.of(row(1, "a", 10))); // returns with the batch in flight
        await(started);
        assertEquals(Map.of(), t.committedSoFar());
        assertEquals(List.of(), db.applied);
        release();
        t.put(List.of(row(2, "b", 11))); // waits for the first batch, hands over the second
        assertEquals(Map.of(TP, new OffsetAndMetadata(11)), t.committedSoFar());
        assertEquals(Map.of(TP, new OffsetAndMetadata(12)), t.preCommit(asked()));
        assertEquals(List.of("orders:1\ta\n", "orders:2\tb\n"), db.applied);
    }

    @Test
    void aBackgroundBatchThatFailsTransientlyIsKeptAndAppliedFirstNoRecordLost() {
        LwwSinkTask t = task(Map.of("cdc.retry.timeout.ms", "10000"), true);
        db.failures.add(new SQLException("gone", "08006"));
        t.put(List.of(row(1, "a", 10))); // fails on the applier thread
        // Connect redelivers only this put's records, not the first batch's
        assertThrows(RetriableException.class, () -> t.put(List.of(row(2, "b", 11))));
        assertEquals(List.of(1000L), timeouts);
        assertEquals(1, db.closed);
        assertEquals(Map.of(), t.preCommit(asked()));
        db.failures.add(new SQLException("could not serialize access", "40001"));
        assertThrows(RetriableException.class, () -> t.put(List.of(row(2, "b", 11)))); // the kept batch again
        assertEquals(List.of(1000L, 2000L), timeouts);
        assertEquals(Map.of(), t.preCommit(asked()));
        t.put(List.of(row(2, "b", 11)));
        assertEquals(Map.of(TP, new OffsetAndMetadata(12)), t.preCommit(asked()));
        assertEquals(List.of("orders:1\ta\n", "orders:2\tb\n"), db.applied); // in order, none lost
        assertEquals(3, db.opened);
    }

    @Test
    void transientFailuresAskForRedeliveryWithBackoffThenFail() {
        LwwSinkTask t = task(Map.of("cdc.retry.timeout.ms", "10000"), true);
        db.failures.add(new SQLException("gone", "08006"));
        t.put(List.of(row(1, "a", 10)));
        assertThrows(RetriableException.class, () -> t.put(List.of(row(2, "b", 11))));
        assertEquals(Map.of(), t.preCommit(asked())); // nothing committed, nothing reported
        assertEquals(1, db.closed);
        now.set(5000);
        db.failures.add(new SQLException("could not serialize access", "40001"));
        assertThrows(RetriableException.class, () -> t.put(List.of(row(2, "b", 11))));
        assertEquals(List.of(1000L, 2000L), timeouts);
        now.set(10_001);
        db.failures.add(new SQLException("starting up", "57P03"));
        ConnectException e = assertThrows(ConnectException.class, () -> t.put(List.of(row(2, "b", 11))));
        assertTrue(!(e instanceof RetriableException) && e.getMessage().contains("kept failing"), e.getMessage());
        assertEquals(Map.of(), t.preCommit(asked()));
        t.put(List.of(row(1, "a", 10))); // a later success resets the clock
        assertEquals(Map.of(TP, new OffsetAndMetadata(11)), t.preCommit(asked()));
        assertEquals(4, db.opened);
    }

    @Test
    void dataErrorsWithoutAReporterFailTheTaskWithoutRetry() {
        LwwSinkTask t = task(Map.of(), false);
        db.failures.add(new SQLException("invalid input syntax for type uuid", "22P02"));
        t.put(List.of(row(1, "a", 10)));
        ConnectException e = assertThrows(ConnectException.class, () -> t.put(List.of(row(2, "b", 11))));
        assertTrue(!(e instanceof RetriableException));
        assertEquals(List.of(), timeouts);
        assertEquals(Map.of(), t.preCommit(asked()));
    }

    @Test
    void aFailureSeenByPreCommitFailsTheNextPut() {
        LwwSinkTask t = task(Map.of(), false);
        db.failures.add(new SQLException("invalid input syntax for type uuid", "22P02"));
        t.put(List.of(row(1, "a", 10)));
        assertEquals(Map.of(), t.preCommit(asked())); // does not throw: Connect would only log it
        ConnectException e = assertThrows(ConnectException.class, () -> t.put(List.of(row(2, "b", 11))));
        assertTrue(!(e instanceof RetriableException) && e.getMessage().contains("invalid input"), e.getMessage());
        assertEquals(List.of(), db.applied);
    }

    @Test
    void aBatchRefusedForItsDataIsHalvedUntilOnlyTheBadRecordGoesToTheDlq() {
        LwwSinkTask t = task(Map.of(), true);
        List<SinkRecord> records = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            records.add(row(i, i == 5 ? "poison" : "r" + i, 20 + i));
        }
        t.put(records); // refused on the applier thread; isolated on the task thread by the next put()
        t.put(List.of(row(9, "r9", 28)));
        assertEquals(List.of(records.get(5)), dlq);
        assertEquals(Map.of(TP, new OffsetAndMetadata(29)), t.preCommit(asked()));
        String applied = String.join("", db.applied);
        for (int i = 0; i < 10; i++) {
            assertEquals(i != 5 && i != 8, applied.contains(i + "\tr" + i + "\n"), "record " + i);
        }
        assertTrue(db.attempts <= 1 + 2 * 3, "halving: at most two tries per level, got " + db.attempts);
        assertEquals(List.of(), timeouts);
    }

    @Test
    void aTransientFailureWhileIsolatingKeepsTheWholeBatchForTheNextPut() {
        LwwSinkTask t = task(Map.of("cdc.retry.timeout.ms", "10000"), true);
        db.failures.add(new SQLException("value too long", "22001"));
        db.failures.add(new SQLException("gone", "08006"));
        t.put(List.of(row(1, "a", 10), row(2, "b", 11)));
        assertEquals(Map.of(), t.preCommit(asked())); // isolating hit the transient failure
        assertEquals(List.of(), dlq);
        assertEquals(List.of(1000L), timeouts);
        t.put(List.of(row(3, "c", 12)));
        assertEquals(Map.of(TP, new OffsetAndMetadata(13)), t.preCommit(asked()));
        assertEquals(List.of("orders:1\ta\n2\tb\n", "orders:3\tc\n"), db.applied);
        assertEquals(List.of(), dlq);
    }

    @Test
    void closeWaitsForTheBatchInFlightAndForgetsTheClosedPartitions() throws Exception {
        LwwSinkTask t = task(Map.of(), true);
        CountDownLatch started = holdApplies();
        t.put(List.of(row(1, "a", 10)));
        await(started);
        CountDownLatch closed = new CountDownLatch(1);
        Thread closer = new Thread(() -> {
            t.close(List.of(TP));
            closed.countDown();
        });
        closer.start();
        assertEquals(1, closed.getCount()); // cannot have returned: the batch is held in the fake
        release();
        assertTrue(closed.await(30, TimeUnit.SECONDS));
        closer.join();
        assertEquals(List.of("orders:1\ta\n"), db.applied);
        assertEquals(Map.of(), t.preCommit(asked())); // redelivered to the partition's next owner
    }

    @Test
    void aKeptBatchCommitsNoOffsetOfAPartitionClosedMeanwhile() {
        LwwSinkTask t = task(Map.of("cdc.retry.timeout.ms", "10000"), true);
        TopicPartition tp1 = new TopicPartition("orders", 1);
        db.failures.add(new SQLException("gone", "08006"));
        t.put(List.of(row(1, "a", 10, 0), row(2, "b", 20, 1)));
        assertEquals(Map.of(), t.preCommit(Map.of(TP, new OffsetAndMetadata(99), tp1, new OffsetAndMetadata(99))));
        t.close(List.of(tp1)); // a rebalance takes partition 1 away
        t.put(List.of(row(3, "c", 11, 0)));
        assertEquals(Map.of(TP, new OffsetAndMetadata(12)),
                t.preCommit(Map.of(TP, new OffsetAndMetadata(99), tp1, new OffsetAndMetadata(99))));
        assertEquals(Map.of(TP, new OffsetAndMetadata(12)), t.committedSoFar());
        assertEquals(List.of("orders:1\ta\n2\tb\n", "orders:3\tc\n"), db.applied);
    }

    @Test
    void stopWaitsForTheBatchInFlightAndClosesTheConnection() throws Exception {
        LwwSinkTask t = task(Map.of(), true);
        CountDownLatch started = holdApplies();
        t.put(List.of(row(1, "a", 10)));
        await(started);
        release();
        t.stop();
        assertEquals(List.of("orders:1\ta\n"), db.applied);
        assertEquals(1, db.closed);
    }

    @Test
    void onlySqlStates22And23AreDataErrors() {
        assertTrue(LwwSinkTask.isDataError(new SQLException("x", "22P02")));
        assertTrue(LwwSinkTask.isDataError(new RuntimeException(new SQLException("x", "23514"))));
        assertTrue(!LwwSinkTask.isDataError(new SQLException("x", "40001")));
        assertTrue(!LwwSinkTask.isDataError(new SQLException("x", "42P01")));
        assertTrue(!LwwSinkTask.isDataError(new SQLException("x")));
    }

    @Test
    void unconvertibleRecordsGoToTheReporterAndTheirOffsetsCommit() {
        LwwSinkTask t = task(Map.of(), true);
        SinkRecord nul = row(2, "bad\u0000", 11);
        SinkRecord unknown = new SinkRecord("elsewhere", 0, null, null, null, null, 12);
        SinkRecord noTable = new SinkRecord("other", 0, RowEncoderTest.KEY, null, RowEncoderTest.VALUE,
                row(3, "x", 1).value(), 13);
        t.put(List.of(row(1, "a", 10), nul, unknown, noTable, row(4, "d", 14)));
        assertEquals(List.of(nul, noTable), dlq); // a null value is skipped, not an error
        assertEquals(Map.of(TP, new OffsetAndMetadata(15)), t.preCommit(asked()));
        assertEquals(List.of("orders:1\ta\n4\td\n"), db.applied);
    }

    @Test
    void withoutAReporterAnUnconvertibleRecordFailsTheTask() {
        LwwSinkTask t = task(Map.of(), false);
        assertThrows(DataException.class, () -> t.put(List.of(row(1, "bad\u0000", 10))));
        assertEquals(Map.of(), t.preCommit(asked()));
        assertEquals(List.of(), db.applied);
    }

    @Test
    void aRecordOfANewerSchemaIsRetriedWithBackoffNotReportedThenFails() {
        LwwSinkTask t = task(Map.of("cdc.retry.timeout.ms", "10000", "batch.size", "1"), true);
        SinkRecord newer = RowEncoderTest.evolved("[\"added\"]", "v");
        newer = new SinkRecord("orders", 0, newer.keySchema(), newer.key(), newer.valueSchema(), newer.value(), 11);
        List<SinkRecord> records = List.of(row(1, "a", 10), newer, row(3, "c", 12));
        assertThrows(RetriableException.class, () -> t.put(records));
        assertEquals(List.of(), dlq); // not the record's fault
        // the batch before it is applied (in flight when put() threw: preCommit() waits for it)
        assertEquals(Map.of(TP, new OffsetAndMetadata(11)), t.preCommit(asked()));
        assertEquals(List.of("orders:1\ta\n"), db.applied);
        now.set(5000);
        assertThrows(RetriableException.class, () -> t.put(records.subList(1, 3)));
        assertEquals(List.of(1000L, 2000L), timeouts);
        now.set(10_001);
        ConnectException e = assertThrows(ConnectException.class, () -> t.put(records.subList(1, 3)));
        assertTrue(!(e instanceof RetriableException) && e.getMessage().contains("cdcctl schema apply"), e.getMessage());
        assertEquals(Map.of(TP, new OffsetAndMetadata(11)), t.preCommit(asked()));
    }
}
