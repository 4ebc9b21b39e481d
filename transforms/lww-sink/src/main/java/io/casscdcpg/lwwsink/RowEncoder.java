package io.casscdcpg.lwwsink;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.sink.SinkRecord;

/**
 * One record as one COPY text row in its target's column order. Each column is read from the
 * record's value struct, else its key struct: a row record's value holds every column, a
 * tombstone record's key holds {@code _cdc_tombstone_id} (docs/transform.md). Pure.
 *
 * <p>A row record (its value has {@code _cdc_set}) and the configured columns may disagree while a
 * Cassandra schema change is on its way (decision 0139): a configured data column the record lacks
 * (dropped in Cassandra, not yet in the connector config) is staged as null, which the merge
 * ignores since the record cannot name it in {@code _cdc_set}; a data field the columns lack (added
 * in Cassandra) that the record sets or holds a value for is a {@link SchemaMismatchException}:
 * the old SQL would lose it. Static columns, always null and never set, are not a mismatch. A row
 * record without {@code _cdc_token} (decision 0154) stages it as null: the token is unknown.
 */
public final class RowEncoder {

    static final String META_PREFIX = "_cdc_";
    static final String SET_FIELD = "_cdc_set";
    /** The row's partition token (decision 0154); NULL when the record has none. */
    static final String TOKEN_FIELD = "_cdc_token";
    private static final ObjectMapper JSON = new ObjectMapper(); // the worker's (connect-json)

    private RowEncoder() {
    }

    /** Appends the record's row, newline included; a DataException leaves {@code out} as it was. */
    public static void append(StringBuilder out, TableSpec spec, SinkRecord record) {
        Struct value = struct(record.value(), "value", record);
        Struct key = record.key() instanceof Struct k ? k : null;
        boolean rowRecord = value.schema().field(SET_FIELD) != null;
        int start = out.length();
        try {
            List<String> columns = spec.columns();
            int dataInValue = 0;
            for (int i = 0; i < columns.size(); i++) {
                if (i > 0) {
                    out.append('\t');
                }
                String name = columns.get(i);
                Field f = value.schema().field(name);
                Struct from = value;
                if (f != null && !name.startsWith(META_PREFIX)) {
                    dataInValue++;
                }
                if (f == null && key != null) {
                    f = key.schema().field(name);
                    from = key;
                }
                if (f == null && rowRecord && !name.startsWith(META_PREFIX)) {
                    if (setColumns(value, record).contains(name)) {
                        throw new DataException("the record sets " + quoted(name) + " but has no such field (target "
                                + spec.target() + ")");
                    }
                    out.append("\\N"); // dropped at the source, not yet in the config: untouched
                    continue;
                }
                if (f == null && rowRecord && TOKEN_FIELD.equals(name)) {
                    // a transform without the table's token spec (or one older than decision
                    // 0154) sends none: unknown, and the merge keeps a stored one
                    out.append("\\N");
                    continue;
                }
                if (f == null) {
                    throw new DataException("the record has no field " + quoted(name) + " (target " + spec.target()
                            + "): is it a row record of the CassandraToRow transform?");
                }
                CopyText.appendField(out, f.schema(), from.get(f));
            }
            if (rowRecord) {
                checkNoUnknownColumn(spec, value, record, dataInValue);
            }
            out.append('\n');
        } catch (RuntimeException e) {
            out.setLength(start);
            throw e;
        }
    }

    /** A data field the columns lack that the record sets or fills: a newer schema than the config. */
    private static void checkNoUnknownColumn(TableSpec spec, Struct value, SinkRecord record, int dataInValue) {
        List<Field> fields = value.schema().fields();
        int data = 0;
        for (Field f : fields) {
            if (!f.name().startsWith(META_PREFIX)) {
                data++;
            }
        }
        if (data == dataInValue) {
            return; // every data field of the record is a configured column (the usual case)
        }
        Set<String> known = new HashSet<>(spec.columns());
        Set<String> set = null;
        for (Field f : fields) {
            String name = f.name();
            if (name.startsWith(META_PREFIX) || known.contains(name)) {
                continue;
            }
            if (set == null) {
                set = setColumns(value, record);
            }
            if (value.get(f) != null || set.contains(name)) {
                throw new SchemaMismatchException("the record at " + record.originalTopic() + "/"
                        + record.originalKafkaPartition() + "@" + record.originalKafkaOffset() + " sets column " + quoted(name) + ", which the connector's "
                        + "lww.table." + spec.target() + ".columns do not have: the Cassandra table gained a column; "
                        + "run `cdcctl schema apply` (the task retries the record until its config has the column)");
            }
        }
    }

    /** The names in the record's {@code _cdc_set} (a JSON array of strings), read with Jackson. */
    static Set<String> setColumns(Struct value, SinkRecord record) {
        Object raw = value.get(SET_FIELD);
        Set<String> out = new HashSet<>();
        if (raw == null) {
            return out;
        }
        String s = raw.toString();
        JsonNode names;
        try {
            names = JSON.readTree(s);
        } catch (JsonProcessingException e) {
            throw bad(record, s);
        }
        if (names == null || !names.isArray()) {
            throw bad(record, s);
        }
        for (JsonNode name : names) {
            if (!name.isTextual()) {
                throw bad(record, s);
            }
            out.add(name.textValue());
        }
        return out;
    }

    private static DataException bad(SinkRecord record, String s) {
        return new DataException("the record's " + SET_FIELD + " at " + record.topic() + "/" + record.kafkaPartition()
                + "@" + record.kafkaOffset() + " is not a JSON array of column names: "
                + (s.length() > 80 ? s.substring(0, 80) + "..." : s));
    }

    private static Struct struct(Object o, String what, SinkRecord record) {
        if (o instanceof Struct s) {
            return s;
        }
        throw new DataException("the record's " + what + " at " + record.topic() + "/" + record.kafkaPartition() + "@"
                + record.kafkaOffset() + " is not a Struct with a schema");
    }

    private static String quoted(String name) {
        return "'" + name + "'";
    }
}
