package io.casscdcpg.lwwsink;

import java.util.List;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.sink.SinkRecord;

/**
 * One record as one COPY text row in its target's column order. Each column is read from the
 * record's value struct, else its key struct: a row record's value holds every column, a
 * tombstone record's key holds {@code _cdc_tombstone_id} (docs/transform.md). Pure.
 */
public final class RowEncoder {

    private RowEncoder() {
    }

    /** Appends the record's row, newline included; a DataException leaves {@code out} as it was. */
    public static void append(StringBuilder out, TableSpec spec, SinkRecord record) {
        Struct value = struct(record.value(), "value", record);
        Struct key = record.key() instanceof Struct k ? k : null;
        int start = out.length();
        try {
            List<String> columns = spec.columns();
            for (int i = 0; i < columns.size(); i++) {
                if (i > 0) {
                    out.append('\t');
                }
                String name = columns.get(i);
                Field f = value.schema().field(name);
                Struct from = value;
                if (f == null && key != null) {
                    f = key.schema().field(name);
                    from = key;
                }
                if (f == null) {
                    throw new DataException("the record has no field " + quoted(name) + " (target " + spec.target()
                            + "): is it a row record of the CassandraToRow transform?");
                }
                CopyText.appendField(out, f.schema(), from.get(f));
            }
            out.append('\n');
        } catch (DataException e) {
            out.setLength(start);
            throw e;
        }
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
