package io.casscdcpg.transforms;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * CPU µs per value of the fast path (the topic's last schema) over every fixture's compact value, the
 * payload read into a tree first and then converted (before decision 0153) against the streaming read
 * (after), alternating rounds in one JVM so a loaded machine weighs on both alike. Not a test: run
 * {@code java -cp <test classpath> io.casscdcpg.transforms.CassandraJsonConverterBench [rounds]}
 * (decision 0153 gives the command); prints per round and the median ratio.
 */
public final class CassandraJsonConverterBench {

    /** The thread's CPU time, not the wall clock: the machine is shared. */
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    private CassandraJsonConverterBench() {
    }

    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        ObjectMapper mapper = new ObjectMapper();
        List<byte[]> values = new ArrayList<>();
        List<String> topics = new ArrayList<>();
        for (String name : Fixtures.all()) {
            JsonNode doc = Fixtures.raw(name);
            JsonNode value = doc.get("value");
            if (value != null && !value.isNull() && value.has("schema")) {
                values.add(mapper.writeValueAsBytes(value));
                topics.add(name); // one topic per fixture: each keeps its schema on the fast path
            }
        }
        CassandraJsonConverter tree = converter(false);
        CassandraJsonConverter streamed = converter(true);
        List<Double> ratios = new ArrayList<>();
        for (int round = 0; round < rounds; round++) {
            double before = perValue(tree, topics, values);
            double after = perValue(streamed, topics, values);
            ratios.add(after / before);
            System.out.printf("round %d: tree %.2f, streaming %.2f CPU µs per value, ratio %.3f%n",
                    round, before, after, after / before);
        }
        ratios.sort(Double::compare);
        System.out.printf("%d values, median ratio streaming/tree %.3f; streaming read's misses %d%n",
                values.size(), ratios.get(ratios.size() / 2), streamed.streamMisses());
    }

    private static CassandraJsonConverter converter(boolean stream) {
        CassandraJsonConverter conv = new CassandraJsonConverter();
        conv.configure(Map.of("schemas.enable", "true"), false);
        conv.streamPayloads(stream);
        return conv;
    }

    /** µs per value over 200 passes of all values (the first conversion of each topic: full path). */
    private static double perValue(CassandraJsonConverter conv, List<String> topics, List<byte[]> values) {
        int passes = 200;
        long sink = 0;
        long start = THREADS.getCurrentThreadCpuTime();
        for (int pass = 0; pass < passes; pass++) {
            for (int i = 0; i < values.size(); i++) {
                sink += conv.toConnectData(topics.get(i), values.get(i)).value().hashCode() & 1;
            }
        }
        long ns = THREADS.getCurrentThreadCpuTime() - start;
        if (sink < 0) {
            throw new AssertionError();
        }
        return ns / 1000.0 / passes / values.size();
    }
}
