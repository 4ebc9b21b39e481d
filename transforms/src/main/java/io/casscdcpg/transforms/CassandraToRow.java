package io.casscdcpg.transforms;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.kafka.common.cache.Cache;
import org.apache.kafka.common.cache.LRUCache;
import org.apache.kafka.common.cache.SynchronizedCache;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.components.Versioned;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.transforms.Transformation;
import org.apache.kafka.connect.transforms.util.SimpleConfig;

/**
 * Turns Debezium Cassandra change events into the flat records of the row contract
 * (docs/decisions/0002-row-contract.md; user guide in docs/transform.md).
 *
 * <ul>
 *   <li>ops {@code i}, {@code u} and row-level {@code d}: a row record on the same topic, key
 *       unchanged, value = every column of the table (primary key first) plus {@code _cdc_writetime},
 *       {@code _cdc_op}, {@code _cdc_set}, {@code _cdc_expiry}, {@code _cdc_snapshot};</li>
 *   <li>partition deletes ({@code d} whose key has null clustering columns) and range deletes
 *       ({@code r}): a tombstone record on {@code <topic><tombstones.topic.suffix>} keyed by a
 *       deterministic {@code _cdc_tombstone_id};</li>
 *   <li>Kafka tombstones (null value): dropped;</li>
 *   <li>anything malformed: {@link DataException} naming topic, partition and offset, so the
 *       worker's error handling (DLQ) takes it. Nothing is dropped silently.</li>
 * </ul>
 *
 * Derived schemas are computed once per (key schema, value schema) and cached.
 */
public class CassandraToRow<R extends ConnectRecord<R>> implements Transformation<R>, Versioned {

    // ---- configuration ------------------------------------------------------------------------

    public static final String TOMBSTONES_TOPIC_SUFFIX_CONFIG = "tombstones.topic.suffix";
    public static final String TOMBSTONES_TOPIC_SUFFIX_DEFAULT = ".tombstones";
    private static final String TOMBSTONES_TOPIC_SUFFIX_DOC =
            "Suffix appended to a record's topic to name the topic of the tombstone records that "
                    + "partition deletes and range deletes become. The sink maps that topic to the "
                    + "table's tombstone table.";

    public static final String CASSANDRA_VERSION_CONFIG = "cassandra.version";
    public static final String CASSANDRA_VERSION_50 = "5.0";
    public static final String CASSANDRA_VERSION_41 = "4.1";
    private static final String CASSANDRA_VERSION_DOC =
            "The Cassandra version of the source cluster, which says which Debezium agent wrote the "
                    + "events: 5.0 (debezium-connector-cassandra-5) or 4.1 "
                    + "(debezium-connector-cassandra-4 3.3.0.Final). The 4.1 agent writes every date as "
                    + "Cassandra's raw day number (days since 1970-01-01 + 2^31); with 4.1 the transform "
                    + "turns it back into days since the epoch, in keys, columns and nested values. "
                    + "Nothing in an event says which agent wrote it (docs/decisions/0113).";

    public static final ConfigDef CONFIG_DEF = new ConfigDef()
            .define(TOMBSTONES_TOPIC_SUFFIX_CONFIG, ConfigDef.Type.STRING, TOMBSTONES_TOPIC_SUFFIX_DEFAULT,
                    new ConfigDef.NonEmptyString(), ConfigDef.Importance.MEDIUM, TOMBSTONES_TOPIC_SUFFIX_DOC)
            .define(CASSANDRA_VERSION_CONFIG, ConfigDef.Type.STRING, CASSANDRA_VERSION_50,
                    ConfigDef.ValidString.in(CASSANDRA_VERSION_50, CASSANDRA_VERSION_41),
                    ConfigDef.Importance.HIGH, CASSANDRA_VERSION_DOC);

    // ---- output field names (the contract) ----------------------------------------------------

    public static final String WRITETIME_FIELD = "_cdc_writetime";
    public static final String OP_FIELD = "_cdc_op";
    public static final String SET_FIELD = "_cdc_set";
    public static final String EXPIRY_FIELD = "_cdc_expiry";
    public static final String SNAPSHOT_FIELD = "_cdc_snapshot";
    /** Murmur3 partition token of the row's key (decision 0154): only for tables with a token spec. */
    public static final String TOKEN_FIELD = "_cdc_token";
    public static final String TOMBSTONE_ID_FIELD = "_cdc_tombstone_id";
    public static final String RANGE_START_FIELD = "_cdc_range_start";
    public static final String RANGE_END_FIELD = "_cdc_range_end";

    public static final String OP_INSERT = "i";
    public static final String OP_UPDATE = "u";
    public static final String OP_DELETE = "d";
    public static final String OP_RANGE = "r";
    public static final String OP_PARTITION = "p";

    // ---- input names (Debezium Cassandra event format) ----------------------------------------

    static final String IN_OP = "op";
    static final String IN_SOURCE = "source";
    static final String IN_AFTER = "after";
    static final String IN_TS_US = "ts_us";
    static final String IN_SNAPSHOT = "snapshot";
    static final String IN_RANGE_START = "_range_start";
    static final String IN_RANGE_END = "_range_end";
    static final String CELL_VALUE = "value";
    static final String CELL_DELETION_TS = "deletion_ts";
    static final String CELL_SET = "set";
    static final String RANGE_METHOD = "method";
    static final String RANGE_VALUES = "values";
    static final String RANGE_ITEM_NAME = "name";
    static final String RANGE_ITEM_VALUE = "value";
    static final String RANGE_ITEM_TYPE = "type";

    private static final String ENVELOPE_SUFFIX = ".Envelope";
    private static final int PLAN_CACHE_SIZE = 64;

    private static final String VERSION = loadVersion();

    private String tombstonesTopicSuffix = TOMBSTONES_TOPIC_SUFFIX_DEFAULT;
    /** The events come from the 4.1 agent: every io.debezium.time.Date value is a raw day number. */
    private boolean rawDates = false;
    private Cache<SchemaPair, Plan> plans = new SynchronizedCache<>(new LRUCache<>(PLAN_CACHE_SIZE));
    /** One-entry identity fast path in front of {@link #plans} (JsonConverter reuses schema instances). */
    private volatile Plan lastPlan;
    /** Partition-key specs by {@code <keyspace>.<table>} ({@code token.tables}, decision 0154). */
    private Map<String, PartitionToken.Spec> tokenSpecs = Map.of();
    /** {@link #tokenSpecs} by topic, {@link #NO_SPEC} for a topic of a table without one. */
    private final Map<String, PartitionToken.Spec> specByTopic = new ConcurrentHashMap<>();
    private static final PartitionToken.Spec NO_SPEC = new PartitionToken.Spec(List.of(), List.of());

    @Override
    public void configure(Map<String, ?> props) {
        SimpleConfig config = new SimpleConfig(CONFIG_DEF, props);
        tombstonesTopicSuffix = config.getString(TOMBSTONES_TOPIC_SUFFIX_CONFIG);
        rawDates = CASSANDRA_VERSION_41.equals(config.getString(CASSANDRA_VERSION_CONFIG));
        tokenSpecs = PartitionToken.parse(props);
        specByTopic.clear();
        plans = new SynchronizedCache<>(new LRUCache<>(PLAN_CACHE_SIZE));
        lastPlan = null;
    }

    @Override
    public ConfigDef config() {
        return CONFIG_DEF;
    }

    @Override
    public String version() {
        return VERSION;
    }

    @Override
    public void close() {
        lastPlan = null;
    }

    // ---- the transform ------------------------------------------------------------------------

    @Override
    public R apply(R record) {
        if (record.value() == null) {
            // A Kafka tombstone (compaction marker, e.g. tombstones.on.delete=true): no change in it.
            return null;
        }
        try {
            return transform(record);
        }
        catch (Malformed e) {
            throw new DataException(context(record) + e.getMessage());
        }
        catch (DataException e) {
            throw new DataException(context(record) + e.getMessage(), e);
        }
    }

    private R transform(R record) {
        if (!(record.value() instanceof Struct value) || record.valueSchema() == null) {
            throw new Malformed("value is not a struct with a schema (a Debezium Cassandra change "
                    + "event read with JsonConverter schemas.enable=true is expected), got "
                    + typeName(record.value()));
        }
        if (!(record.key() instanceof Struct key) || record.keySchema() == null) {
            throw new Malformed("key is not a struct with a schema (Debezium Cassandra keys are "
                    + "structs of the primary-key columns), got " + typeName(record.key()));
        }
        Plan plan = planFor(record.keySchema(), record.valueSchema(), tokenSpec(record.topic()));
        if (plan.keyHasRawDates) {
            key = (Struct) fixDates(key, key.schema());
        }

        Object opValue = value.get(plan.opField);
        if (!(opValue instanceof String op)) {
            throw new Malformed("event has no op");
        }
        Struct source = (Struct) value.get(plan.sourceField);
        if (source == null) {
            throw new Malformed("event has no source block (source.ts_us is needed)");
        }
        Object tsValue = source.get(plan.tsUsField);
        if (!(tsValue instanceof Long writetime)) {
            throw new Malformed("event has no source.ts_us (the mutation's write timestamp)");
        }
        Struct after = (Struct) value.get(plan.afterField);
        if (after == null) {
            throw new Malformed("event has no after block");
        }

        switch (op) {
            case OP_INSERT, OP_UPDATE -> {
                return rowRecord(record, plan, key, after, op, writetime, isSnapshot(plan, source));
            }
            case OP_DELETE -> {
                BitSet nullKeys = nullKeyColumns(plan, key);
                if (nullKeys.isEmpty()) {
                    return rowRecord(record, plan, key, after, op, writetime, isSnapshot(plan, source));
                }
                return tombstoneRecord(record, plan, key, after, nullKeys, OP_PARTITION,
                        partitionDeletionTime(plan, after, writetime));
            }
            case OP_RANGE -> {
                BitSet nullKeys = nullKeyColumns(plan, key);
                if (nullKeys.isEmpty()) {
                    throw new Malformed("range delete (op r) whose key has no null clustering column");
                }
                return tombstoneRecord(record, plan, key, after, nullKeys, OP_RANGE, writetime);
            }
            default -> throw new Malformed("unknown op '" + op + "' (expected one of i, u, d, r)");
        }
    }

    private R rowRecord(R record, Plan plan, Struct key, Struct after, String op, long writetime,
                        boolean snapshot) {
        Struct out = new Struct(plan.rowSchema);
        for (int i = 0; i < plan.keyFields.size(); i++) {
            Object v = key.get(plan.keyFields.get(i));
            if (v == null) {
                throw new Malformed("row event (op " + op + ") has a null primary-key column '"
                        + plan.keyFields.get(i).name() + "'");
            }
            out.put(plan.rowKeyFields.get(i), adapt(v, plan.rowKeyFields.get(i).schema()));
        }
        boolean expiring = !OP_DELETE.equals(op);
        StringBuilder set = new StringBuilder(64).append('[');
        StringBuilder expiry = null;
        boolean firstSet = true;
        for (Column column : plan.columns) {
            Struct cell = (Struct) after.get(column.afterField);
            if (cell == null) {
                continue; // not touched by this mutation
            }
            if (Boolean.FALSE.equals(cell.get(column.cellSet))) {
                continue; // explicitly not set
            }
            Object cellValue = cell.get(column.cellValue);
            out.put(column.outField, column.json
                    ? (cellValue == null ? null : CqlJson.render(cellValue, column.valueSchema, plan.rawDates))
                    : adapt(plan.rawDates ? fixDates(cellValue, column.valueSchema) : cellValue,
                            column.outField.schema()));
            if (!firstSet) {
                set.append(',');
            }
            firstSet = false;
            set.append(column.quotedName);
            if (expiring) {
                Object deletionTs = cell.get(column.cellDeletionTs);
                if (deletionTs != null) {
                    expiry = (expiry == null ? new StringBuilder(64).append('{') : expiry.append(','));
                    expiry.append(column.quotedName).append(':').append(((Long) deletionTs).longValue());
                }
            }
        }
        out.put(plan.writetimeField, writetime);
        out.put(plan.opOutField, op);
        out.put(plan.setField, set.append(']').toString());
        out.put(plan.expiryField, expiry == null ? null : expiry.append('}').toString());
        out.put(plan.snapshotField, snapshot);
        if (plan.tokenField != null) {
            out.put(plan.tokenField, plan.tokenBinding.token(key));
        }
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(), key,
                plan.rowSchema, out, record.timestamp(), record.headers());
    }

    private R tombstoneRecord(R record, Plan plan, Struct key, Struct after, BitSet nullKeys, String op,
                              long writetime) {
        if (nullKeys.cardinality() == plan.keyFields.size()) {
            throw new Malformed("delete whose key has no partition-key value (every key column is null)");
        }
        TombstonePlan tp = plan.tombstonePlan(nullKeys);
        Struct out = new Struct(tp.valueSchema);
        StringBuilder canonical = new StringBuilder(128).append("{\"key\":{");
        for (int i = 0; i < tp.partitionKeyFields.size(); i++) {
            Field in = tp.partitionKeyFields.get(i);
            Object v = key.get(in);
            out.put(tp.outKeyFields.get(i), adapt(v, tp.outKeyFields.get(i).schema()));
            if (i > 0) {
                canonical.append(',');
            }
            Json.appendString(canonical, in.name()).append(':');
            Json.appendValue(canonical, v);
        }
        String rangeStart = null;
        String rangeEnd = null;
        if (OP_RANGE.equals(op)) {
            rangeStart = rangeJson(plan, after, plan.rangeStartField, IN_RANGE_START);
            rangeEnd = rangeJson(plan, after, plan.rangeEndField, IN_RANGE_END);
        }
        out.put(tp.writetimeField, writetime);
        out.put(tp.opField, op);
        out.put(tp.rangeStartField, rangeStart);
        out.put(tp.rangeEndField, rangeEnd);

        canonical.append("},\"op\":");
        Json.appendString(canonical, op);
        canonical.append(",\"writetime\":").append(writetime).append(",\"range_start\":");
        canonical.append(rangeStart == null ? "null" : rangeStart);
        canonical.append(",\"range_end\":");
        canonical.append(rangeEnd == null ? "null" : rangeEnd);
        canonical.append('}');
        Struct outKey = new Struct(tp.keySchema).put(TOMBSTONE_ID_FIELD, sha256Hex(canonical.toString()));

        return record.newRecord(record.topic() + tombstonesTopicSuffix, record.kafkaPartition(),
                tp.keySchema, outKey, tp.valueSchema, out, record.timestamp(), record.headers());
    }

    /**
     * A partition delete's own timestamp. Debezium puts the partition's markedForDeleteAt in every
     * cell's deletion_ts, while source.ts_us is the PartitionUpdate's max timestamp, which is later
     * when the same mutation also writes rows. Prefer the former, fall back to the latter.
     */
    private static long partitionDeletionTime(Plan plan, Struct after, long sourceTsUs) {
        for (Column column : plan.columns) {
            Struct cell = (Struct) after.get(column.afterField);
            if (cell != null && cell.get(column.cellDeletionTs) instanceof Long ts) {
                return ts;
            }
        }
        for (Column column : plan.keyCells) {
            Struct cell = (Struct) after.get(column.afterField);
            if (cell != null && cell.get(column.cellDeletionTs) instanceof Long ts) {
                return ts;
            }
        }
        return sourceTsUs;
    }

    /**
     * Renders a {@code _range_start}/{@code _range_end} struct as JSON
     * {@code {"method": ..., "values": [{"name", "value", "type"}, ...]}}, the values ordered by the
     * clustering columns' order in the key (Debezium emits them in hash-map order) and the names
     * unquoted (Debezium writes them as CQL identifiers, quoted where CQL needs quotes).
     */
    private static String rangeJson(Plan plan, Struct after, Field field, String name) {
        if (field == null) {
            throw new Malformed("range delete (op r) but the after block has no " + name + " field");
        }
        Object raw = after.get(field);
        if (!(raw instanceof Struct range)) {
            throw new Malformed("range delete (op r) with no " + name + " bound");
        }
        Field methodField = range.schema().field(RANGE_METHOD);
        Field valuesField = range.schema().field(RANGE_VALUES);
        if (methodField == null || valuesField == null) {
            throw new Malformed(name + " is not a {method, values} struct");
        }
        Object method = range.get(methodField);
        Object values = range.get(valuesField);
        if (!(method instanceof String) || !(values instanceof List<?> items)) {
            throw new Malformed(name + " has no method or no values");
        }
        List<String[]> entries = new ArrayList<>(items.size());
        for (Object item : items) {
            if (!(item instanceof Struct s) || s.schema().field(RANGE_ITEM_NAME) == null
                    || s.schema().field(RANGE_ITEM_VALUE) == null || s.schema().field(RANGE_ITEM_TYPE) == null) {
                throw new Malformed(name + ".values holds an item that is not a {name, value, type} struct");
            }
            Object itemName = s.get(RANGE_ITEM_NAME);
            if (!(itemName instanceof String n)) {
                throw new Malformed(name + ".values holds an item with no name");
            }
            Object itemValue = s.get(RANGE_ITEM_VALUE);
            Object itemType = s.get(RANGE_ITEM_TYPE);
            entries.add(new String[]{unquoteCqlIdentifier(n),
                    itemValue == null ? null : itemValue.toString(),
                    itemType == null ? null : itemType.toString()});
        }
        entries.sort((a, b) -> {
            int pa = plan.keyPosition.getOrDefault(a[0], Integer.MAX_VALUE);
            int pb = plan.keyPosition.getOrDefault(b[0], Integer.MAX_VALUE);
            return pa != pb ? Integer.compare(pa, pb) : a[0].compareTo(b[0]);
        });
        StringBuilder out = new StringBuilder(64).append("{\"method\":");
        Json.appendString(out, (String) method).append(",\"values\":[");
        for (int i = 0; i < entries.size(); i++) {
            String[] e = entries.get(i);
            if (i > 0) {
                out.append(',');
            }
            out.append("{\"name\":");
            Json.appendString(out, e[0]).append(",\"value\":");
            Json.appendValue(out, e[1]).append(",\"type\":");
            Json.appendValue(out, e[2]).append('}');
        }
        return out.append("]}").toString();
    }

    static String unquoteCqlIdentifier(String name) {
        if (name.length() >= 2 && name.charAt(0) == '"' && name.charAt(name.length() - 1) == '"') {
            return name.substring(1, name.length() - 1).replace("\"\"", "\"");
        }
        return name;
    }

    private static BitSet nullKeyColumns(Plan plan, Struct key) {
        BitSet nulls = new BitSet(plan.keyFields.size());
        for (int i = 0; i < plan.keyFields.size(); i++) {
            if (key.get(plan.keyFields.get(i)) == null) {
                nulls.set(i);
            }
        }
        return nulls;
    }

    private static boolean isSnapshot(Plan plan, Struct source) {
        if (plan.snapshotInField == null) {
            return false;
        }
        Object v = source.get(plan.snapshotInField);
        if (v instanceof Boolean b) {
            return b;
        }
        // Debezium's io.debezium.data.Enum: true, first, last, ..., false, incremental.
        return v instanceof String s && !s.isEmpty() && !"false".equalsIgnoreCase(s);
    }

    /** True if {@code schema} holds an {@code io.debezium.time.Date} anywhere (struct fields, arrays, maps). */
    static boolean hasDate(Schema schema) {
        return switch (schema.type()) {
            case INT32 -> CqlJson.DATE.equals(schema.name());
            case ARRAY -> hasDate(schema.valueSchema());
            case MAP -> hasDate(schema.keySchema()) || hasDate(schema.valueSchema());
            case STRUCT -> schema.fields().stream().anyMatch(f -> hasDate(f.schema()));
            default -> false;
        };
    }

    /**
     * {@code value} with every {@code io.debezium.time.Date} turned from Cassandra's raw day number
     * (the 4.1 agent's: days since 1970-01-01 + 2^31, as int32) into days since the epoch. Exact: the
     * raw number is the unsigned day, so flipping the sign bit is the subtraction of 2^31 mod 2^32.
     * Only key structs and top-level values need it (JSON columns are fixed by {@link CqlJson}).
     */
    static Object fixDates(Object value, Schema schema) {
        if (value == null) {
            return null;
        }
        if (schema.type() == Schema.Type.INT32 && CqlJson.DATE.equals(schema.name()) && value instanceof Integer raw) {
            return raw ^ Integer.MIN_VALUE;
        }
        if (schema.type() == Schema.Type.STRUCT && value instanceof Struct s && hasDate(schema)) {
            Struct copy = new Struct(s.schema());
            for (Field f : s.schema().fields()) {
                copy.put(f, fixDates(s.get(f), f.schema()));
            }
            return copy;
        }
        return value;
    }

    /** Re-wraps a struct value whose schema was copied to be optional; other values pass as they are. */
    private static Object adapt(Object value, Schema target) {
        if (value instanceof Struct s && !s.schema().equals(target)) {
            Struct copy = new Struct(target);
            for (Field f : target.fields()) {
                copy.put(f, s.get(f.name()));
            }
            return copy;
        }
        return value;
    }

    // ---- schemas and plans ----------------------------------------------------------------------

    /** The partition-key spec of the topic's table, or null (then row records have no token field). */
    private PartitionToken.Spec tokenSpec(String topic) {
        if (tokenSpecs.isEmpty() || topic == null) {
            return null;
        }
        PartitionToken.Spec spec = specByTopic.get(topic);
        if (spec == null) {
            String table = PartitionToken.tableOfTopic(topic);
            spec = table == null ? NO_SPEC : tokenSpecs.getOrDefault(table, NO_SPEC);
            specByTopic.put(topic, spec);
        }
        return spec == NO_SPEC ? null : spec;
    }

    Plan planFor(Schema keySchema, Schema valueSchema) {
        return planFor(keySchema, valueSchema, null);
    }

    Plan planFor(Schema keySchema, Schema valueSchema, PartitionToken.Spec tokenSpec) {
        Plan last = lastPlan;
        if (last != null && last.keySchema == keySchema && last.valueSchema == valueSchema
                && last.rawDates == rawDates && last.tokenSpec == tokenSpec) {
            return last;
        }
        SchemaPair pair = new SchemaPair(keySchema, valueSchema, tokenSpec);
        Plan plan = plans.get(pair);
        if (plan == null) {
            plan = new Plan(keySchema, valueSchema, rawDates, tokenSpec);
            plans.put(pair, plan);
        }
        lastPlan = plan;
        return plan;
    }

    /** Everything derived from one (key schema, value schema) pair, computed once. */
    static final class Plan {
        final Schema keySchema;
        final Schema valueSchema;
        /** Dates are raw day numbers (the 4.1 agent's) and are corrected. */
        final boolean rawDates;
        /** {@link #rawDates} and the key has a date column: the key is rebuilt with corrected dates. */
        final boolean keyHasRawDates;
        final Field opField;
        final Field sourceField;
        final Field tsUsField;
        final Field snapshotInField;
        final Field afterField;
        final Field rangeStartField;
        final Field rangeEndField;
        final List<Field> keyFields;
        final Map<String, Integer> keyPosition = new HashMap<>();
        /** Cells of the key columns in after (used only to read a partition delete's deletion_ts). */
        final List<Column> keyCells = new ArrayList<>();
        final List<Column> columns = new ArrayList<>();
        final String baseName;

        final Schema rowSchema;
        final List<Field> rowKeyFields = new ArrayList<>();
        final Field writetimeField;
        final Field opOutField;
        final Field setField;
        final Field expiryField;
        final Field snapshotField;
        /** The table's partition-key spec (null: no token field), bound to the key schema. */
        final PartitionToken.Spec tokenSpec;
        final Field tokenField;
        final PartitionToken.Binding tokenBinding;

        private final Map<BitSet, TombstonePlan> tombstonePlans = new ConcurrentHashMap<>();

        Plan(Schema keySchema, Schema valueSchema, boolean rawDates, PartitionToken.Spec tokenSpec) {
            this.keySchema = keySchema;
            this.tokenSpec = tokenSpec;
            this.valueSchema = valueSchema;
            this.rawDates = rawDates;
            if (valueSchema.type() != Schema.Type.STRUCT) {
                throw new Malformed("value schema is " + valueSchema.type() + ", not a struct");
            }
            if (keySchema.type() != Schema.Type.STRUCT || keySchema.fields().isEmpty()) {
                throw new Malformed("key schema is not a struct of primary-key columns");
            }
            opField = valueSchema.field(IN_OP);
            if (opField == null) {
                throw new Malformed("event has no op (the value schema has no 'op' field)");
            }
            if (opField.schema().type() != Schema.Type.STRING) {
                throw new Malformed("op is " + opField.schema().type() + ", not a string");
            }
            sourceField = valueSchema.field(IN_SOURCE);
            if (sourceField == null || sourceField.schema().type() != Schema.Type.STRUCT) {
                throw new Malformed("event has no source.ts_us (the value schema has no 'source' struct)");
            }
            tsUsField = sourceField.schema().field(IN_TS_US);
            if (tsUsField == null || tsUsField.schema().type() != Schema.Type.INT64) {
                throw new Malformed("event has no source.ts_us (int64 write timestamp in microseconds)");
            }
            snapshotInField = sourceField.schema().field(IN_SNAPSHOT);
            afterField = valueSchema.field(IN_AFTER);
            if (afterField == null || afterField.schema().type() != Schema.Type.STRUCT) {
                throw new Malformed("event has no 'after' struct");
            }
            Schema afterSchema = afterField.schema();
            rangeStartField = afterSchema.field(IN_RANGE_START);
            rangeEndField = afterSchema.field(IN_RANGE_END);

            keyFields = keySchema.fields();
            keyHasRawDates = rawDates && hasDate(keySchema);
            for (Field f : keyFields) {
                keyPosition.put(f.name(), f.index());
            }
            for (Field f : afterSchema.fields()) {
                if (f.name().equals(IN_RANGE_START) || f.name().equals(IN_RANGE_END)) {
                    continue;
                }
                Column column = Column.of(f);
                if (keyPosition.containsKey(f.name())) {
                    keyCells.add(column);
                }
                else {
                    columns.add(column);
                }
            }

            String name = valueSchema.name();
            if (name != null && name.endsWith(ENVELOPE_SUFFIX)) {
                baseName = name.substring(0, name.length() - ENVELOPE_SUFFIX.length());
            }
            else if (name != null && !name.isEmpty()) {
                baseName = name;
            }
            else {
                baseName = "io.casscdcpg";
            }

            SchemaBuilder row = SchemaBuilder.struct().name(baseName + ".Row");
            for (Field f : keyFields) {
                row.field(f.name(), optional(f.schema()));
            }
            for (Column c : columns) {
                // collections, tuples and UDTs become canonical JSON text (PostgreSQL jsonb)
                row.field(c.name, c.json ? Schema.OPTIONAL_STRING_SCHEMA : optional(c.valueSchema));
            }
            row.field(WRITETIME_FIELD, Schema.INT64_SCHEMA);
            row.field(OP_FIELD, Schema.STRING_SCHEMA);
            row.field(SET_FIELD, Schema.STRING_SCHEMA);
            row.field(EXPIRY_FIELD, Schema.OPTIONAL_STRING_SCHEMA);
            row.field(SNAPSHOT_FIELD, Schema.BOOLEAN_SCHEMA);
            if (tokenSpec != null) {
                row.field(TOKEN_FIELD, Schema.OPTIONAL_INT64_SCHEMA);
            }
            rowSchema = row.build();
            for (Field f : keyFields) {
                rowKeyFields.add(rowSchema.field(f.name()));
            }
            for (Column c : columns) {
                c.outField = rowSchema.field(c.name);
            }
            writetimeField = rowSchema.field(WRITETIME_FIELD);
            opOutField = rowSchema.field(OP_FIELD);
            setField = rowSchema.field(SET_FIELD);
            expiryField = rowSchema.field(EXPIRY_FIELD);
            snapshotField = rowSchema.field(SNAPSHOT_FIELD);
            tokenField = tokenSpec == null ? null : rowSchema.field(TOKEN_FIELD);
            tokenBinding = tokenSpec == null ? null : tokenSpec.bind(keySchema);
        }

        TombstonePlan tombstonePlan(BitSet nullKeys) {
            return tombstonePlans.computeIfAbsent((BitSet) nullKeys.clone(), n -> new TombstonePlan(this, n));
        }
    }

    /** Output schemas of the tombstone records of one table (one per set of null key columns). */
    static final class TombstonePlan {
        final Schema keySchema;
        final Schema valueSchema;
        final List<Field> partitionKeyFields = new ArrayList<>();
        final List<Field> outKeyFields = new ArrayList<>();
        final Field writetimeField;
        final Field opField;
        final Field rangeStartField;
        final Field rangeEndField;

        TombstonePlan(Plan plan, BitSet nullKeys) {
            keySchema = SchemaBuilder.struct().name(plan.baseName + ".TombstoneKey")
                    .field(TOMBSTONE_ID_FIELD, Schema.STRING_SCHEMA).build();
            SchemaBuilder value = SchemaBuilder.struct().name(plan.baseName + ".Tombstone");
            for (int i = 0; i < plan.keyFields.size(); i++) {
                if (!nullKeys.get(i)) {
                    Field f = plan.keyFields.get(i);
                    partitionKeyFields.add(f);
                    value.field(f.name(), optional(f.schema()));
                }
            }
            value.field(WRITETIME_FIELD, Schema.INT64_SCHEMA);
            value.field(OP_FIELD, Schema.STRING_SCHEMA);
            value.field(RANGE_START_FIELD, Schema.OPTIONAL_STRING_SCHEMA);
            value.field(RANGE_END_FIELD, Schema.OPTIONAL_STRING_SCHEMA);
            valueSchema = value.build();
            for (Field f : partitionKeyFields) {
                outKeyFields.add(valueSchema.field(f.name()));
            }
            writetimeField = valueSchema.field(WRITETIME_FIELD);
            opField = valueSchema.field(OP_FIELD);
            rangeStartField = valueSchema.field(RANGE_START_FIELD);
            rangeEndField = valueSchema.field(RANGE_END_FIELD);
        }
    }

    /** One column of the event's after block: its cell struct's fields and its output field. */
    static final class Column {
        final String name;
        final String quotedName;
        final Field afterField;
        final Field cellValue;
        final Field cellDeletionTs;
        final Field cellSet;
        final Schema valueSchema;
        /** An array, map or struct value (collection, tuple, UDT): written as JSON text. */
        final boolean json;
        Field outField;

        private Column(Field afterField, Field cellValue, Field cellDeletionTs, Field cellSet) {
            this.name = afterField.name();
            this.quotedName = Json.quote(name);
            this.afterField = afterField;
            this.cellValue = cellValue;
            this.cellDeletionTs = cellDeletionTs;
            this.cellSet = cellSet;
            this.valueSchema = cellValue.schema();
            Schema.Type type = valueSchema.type();
            this.json = type == Schema.Type.ARRAY || type == Schema.Type.MAP || type == Schema.Type.STRUCT;
        }

        static Column of(Field f) {
            Schema cell = f.schema();
            Field value = cell.type() == Schema.Type.STRUCT ? cell.field(CELL_VALUE) : null;
            Field deletionTs = cell.type() == Schema.Type.STRUCT ? cell.field(CELL_DELETION_TS) : null;
            Field set = cell.type() == Schema.Type.STRUCT ? cell.field(CELL_SET) : null;
            if (value == null || deletionTs == null || set == null
                    || deletionTs.schema().type() != Schema.Type.INT64
                    || set.schema().type() != Schema.Type.BOOLEAN) {
                throw new Malformed("column '" + f.name() + "' in after is not a cell struct "
                        + "{value, deletion_ts: int64, set: boolean} (its schema is " + describe(cell) + ")");
            }
            return new Column(f, value, deletionTs, set);
        }
    }

    /** Returns {@code schema} itself if optional, else an optional copy (same type, name, parameters). */
    static Schema optional(Schema schema) {
        if (schema.isOptional()) {
            return schema;
        }
        SchemaBuilder b = switch (schema.type()) {
            case STRUCT -> {
                SchemaBuilder s = SchemaBuilder.struct();
                for (Field f : schema.fields()) {
                    s.field(f.name(), f.schema());
                }
                yield s;
            }
            case ARRAY -> SchemaBuilder.array(schema.valueSchema());
            case MAP -> SchemaBuilder.map(schema.keySchema(), schema.valueSchema());
            default -> SchemaBuilder.type(schema.type());
        };
        if (schema.name() != null) {
            b.name(schema.name());
        }
        if (schema.version() != null) {
            b.version(schema.version());
        }
        if (schema.doc() != null) {
            b.doc(schema.doc());
        }
        if (schema.parameters() != null && !schema.parameters().isEmpty()) {
            b.parameters(schema.parameters());
        }
        return b.optional().build();
    }

    /** Cache key: schemas compare by value (ConnectSchema.equals), so equal schemas share a plan. */
    private record SchemaPair(Schema key, Schema value, PartitionToken.Spec tokenSpec) {
    }

    /** A malformed event; turned into a {@link DataException} with the record's coordinates. */
    static final class Malformed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Malformed(String message) {
            super(message, null, false, false);
        }
    }

    // ---- helpers ------------------------------------------------------------------------------

    private static String context(ConnectRecord<?> record) {
        String offset = record instanceof SinkRecord sink ? Long.toString(sink.kafkaOffset()) : "n/a";
        return "CassandraToRow cannot transform the record at topic=" + record.topic()
                + " partition=" + record.kafkaPartition() + " offset=" + offset + ": ";
    }

    private static String typeName(Object o) {
        return o == null ? "null" : o.getClass().getSimpleName();
    }

    private static String describe(Schema s) {
        return s.type() + (s.name() == null ? "" : " " + s.name());
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    static String sha256Hex(String text) {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        }
        catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every Java platform", e);
        }
        byte[] hash = digest.digest(text.getBytes(StandardCharsets.UTF_8));
        char[] out = new char[hash.length * 2];
        for (int i = 0; i < hash.length; i++) {
            out[2 * i] = HEX[(hash[i] >> 4) & 0xF];
            out[2 * i + 1] = HEX[hash[i] & 0xF];
        }
        return new String(out);
    }

    private static String loadVersion() {
        try (InputStream in = CassandraToRow.class.getResourceAsStream("version.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                String v = p.getProperty("version");
                if (v != null && !v.isBlank() && !v.startsWith("${")) {
                    return v.trim();
                }
            }
        }
        catch (IOException ignored) {
            // fall through
        }
        return "unknown";
    }
}
