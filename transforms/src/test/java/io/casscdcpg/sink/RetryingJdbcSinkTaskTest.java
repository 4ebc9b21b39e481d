package io.casscdcpg.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Proxy;
import java.net.ConnectException;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.apache.kafka.connect.sink.SinkTaskContext;
import org.junit.jupiter.api.Test;

class RetryingJdbcSinkTaskTest {

    /** A stand-in for Debezium's task: fails while {@code down} is set, records what it saw. */
    static final class FakeTask extends SinkTask {
        static boolean down;
        static RuntimeException failure;
        static RuntimeException startFailure;
        /** Like Debezium's task: a failed put returns normally and keeps the failure. */
        static boolean swallow;
        Throwable lastFailure;
        final List<Collection<TopicPartition>> opened = new ArrayList<>();
        boolean stopped;
        int puts;

        @Override
        public String version() {
            return "fake";
        }

        @Override
        public void start(Map<String, String> props) {
            if (startFailure != null) {
                throw startFailure;
            }
        }

        @Override
        public void open(Collection<TopicPartition> partitions) {
            opened.add(List.copyOf(partitions));
        }

        @Override
        public void put(Collection<SinkRecord> records) {
            puts++;
            if (down) {
                if (swallow) {
                    lastFailure = failure;
                    return;
                }
                throw failure;
            }
        }

        @Override
        public void stop() {
            stopped = true;
        }

        public Throwable getLastProcessingException() {
            return lastFailure;
        }
    }

    static RuntimeException sqlState(String state) {
        return new org.apache.kafka.connect.errors.ConnectException("JDBC sink connector failure",
                new RuntimeException("Error executing work", new SQLException("FATAL", state)));
    }

    final AtomicLong now = new AtomicLong(1_000_000);
    final List<Long> timeouts = new ArrayList<>();
    final List<FakeTask> created = new ArrayList<>();

    RetryingJdbcSinkTask task(Map<String, String> props) {
        RetryingJdbcSinkTask t = new RetryingJdbcSinkTask(now::get, () -> {
            FakeTask f = new FakeTask();
            created.add(f);
            return f;
        });
        SinkTaskContext ctx = (SinkTaskContext) Proxy.newProxyInstance(getClass().getClassLoader(),
                new Class<?>[] {SinkTaskContext.class}, (proxy, method, args) -> {
                    if (method.getName().equals("timeout")) {
                        timeouts.add((Long) args[0]);
                    }
                    return null;
                });
        t.initialize(ctx);
        t.start(props);
        return t;
    }

    @Test
    void anOutageIsRetriedWithDoublingCappedBackoffOnAFreshTask() {
        FakeTask.down = true;
        FakeTask.failure = sqlState("57P01");
        RetryingJdbcSinkTask t = task(Map.of("cdc.retry.backoff.initial.ms", "1000",
                "cdc.retry.backoff.max.ms", "5000", "cdc.retry.timeout.ms", "120000"));
        TopicPartition tp = new TopicPartition("demo.ks.t", 0);
        t.open(List.of(tp));
        for (int i = 0; i < 5; i++) {
            assertThrows(RetriableException.class, () -> t.put(List.of()));
            assertFalse(t.hasDelegate());
            now.addAndGet(timeouts.get(timeouts.size() - 1));
        }
        assertEquals(List.of(1000L, 2000L, 4000L, 5000L, 5000L), timeouts);
        // redelivered before the backoff is over (Connect's poll also wakes to commit offsets):
        // no new task, no database access, the rest of the wait asked for again
        int tasks = created.size();
        now.addAndGet(-3000);
        assertThrows(RetriableException.class, () -> t.put(List.of()));
        assertEquals(tasks, created.size());
        assertEquals(3000L, timeouts.get(timeouts.size() - 1));
        now.addAndGet(3000);
        created.forEach(f -> assertTrue(f.stopped, "every failed task is stopped (its pool closed)"));
        FakeTask.down = false;
        t.put(List.of());
        assertEquals(0, t.attempt());
        FakeTask fresh = created.get(created.size() - 1);
        assertEquals(List.of(List.of(tp)), fresh.opened, "the fresh task gets the assigned partitions");
        assertEquals(1, fresh.puts);
    }

    @Test
    void aTaskThatStartedOnceIsRestartedWhateverItsStartSaysWhileTheDatabaseIsAway() {
        FakeTask.down = true;
        FakeTask.failure = sqlState("08006");
        RetryingJdbcSinkTask t = task(Map.of());
        assertThrows(RetriableException.class, () -> t.put(List.of()));
        FakeTask.startFailure = new IllegalStateException("Hibernate could not bootstrap");
        try {
            for (int i = 0; i < 2; i++) {
                now.addAndGet(timeouts.get(timeouts.size() - 1));
                assertThrows(RetriableException.class, () -> t.put(List.of()));
            }
        } finally {
            FakeTask.startFailure = null;
        }
        assertEquals(3, t.attempt());
        FakeTask.down = false;
        now.addAndGet(timeouts.get(timeouts.size() - 1));
        t.put(List.of());
        assertEquals(0, t.attempt());
    }

    @Test
    void aFirstStartWithBadSettingsFails() {
        FakeTask.startFailure = new IllegalStateException("bad config");
        try {
            assertThrows(IllegalStateException.class, () -> task(Map.of()));
        } finally {
            FakeTask.startFailure = null;
        }
    }

    @Test
    void aBatchWhoseFailureTheTaskSwallowedIsRedelivered() {
        FakeTask.down = true;
        FakeTask.swallow = true;
        FakeTask.failure = sqlState("57P01");
        try {
            RetryingJdbcSinkTask t = task(Map.of());
            assertThrows(RetriableException.class, () -> t.put(List.of()));
            assertFalse(t.hasDelegate());
        } finally {
            FakeTask.swallow = false;
        }
    }

    @Test
    void afterTheTimeoutTheTaskFails() {
        FakeTask.down = true;
        FakeTask.failure = new org.apache.kafka.connect.errors.ConnectException("x",
                new ConnectException("Connection refused"));
        RetryingJdbcSinkTask t = task(Map.of("cdc.retry.timeout.ms", "10000"));
        assertThrows(RetriableException.class, () -> t.put(List.of()));
        now.addAndGet(10_001);
        assertTrue(timeouts.get(0) < 10_001);
        RuntimeException e = assertThrows(RuntimeException.class, () -> t.put(List.of()));
        assertFalse(e instanceof RetriableException);
        assertTrue(e.getMessage().contains("giving up"), e.getMessage());
    }

    @Test
    void aDataErrorFailsAtOnce() {
        FakeTask.down = true;
        FakeTask.failure = sqlState("23505");
        RetryingJdbcSinkTask t = task(Map.of());
        RuntimeException e = assertThrows(RuntimeException.class, () -> t.put(List.of()));
        assertSame(FakeTask.failure, e);
        assertTrue(timeouts.isEmpty());
    }

    @Test
    void transientCausesAreRecognised() {
        assertTrue(RetryPolicy.isTransient(sqlState("08001")));
        assertTrue(RetryPolicy.isTransient(sqlState("08006")));
        assertTrue(RetryPolicy.isTransient(sqlState("57P03")));
        assertTrue(RetryPolicy.isTransient(sqlState("40P01")));
        assertTrue(RetryPolicy.isTransient(new RuntimeException(new ConnectException("refused"))));
        assertFalse(RetryPolicy.isTransient(sqlState("22P02")));
        assertFalse(RetryPolicy.isTransient(sqlState("42501")));
        assertFalse(RetryPolicy.isTransient(sqlState(null)));
        assertFalse(RetryPolicy.isTransient(new IllegalStateException("bug")));
    }

    @Test
    void foreverAndBadSettings() {
        RetryPolicy forever = RetryPolicy.from(Map.of("cdc.retry.timeout.ms", "-1"));
        assertTrue(forever.withinTimeout(Long.MAX_VALUE / 2));
        assertThrows(IllegalArgumentException.class,
                () -> RetryPolicy.from(Map.of("cdc.retry.backoff.initial.ms", "0")));
        assertThrows(IllegalArgumentException.class, () -> RetryPolicy.from(Map.of("cdc.retry.timeout.ms", "x")));
    }
}
