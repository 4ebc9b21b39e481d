package io.casscdcpg.transforms;

import java.nio.ByteBuffer;
import java.time.Instant;
import java.time.LocalDate;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;

/**
 * Renders a collection, tuple or UDT value of a Debezium Cassandra cell as canonical JSON text,
 * the form the PostgreSQL {@code jsonb} column holds (docs/semantics.md, "Types"):
 *
 * <ul>
 *   <li>list, set: array (Cassandra's element order; sets come sorted);</li>
 *   <li>map: object; a non-text key becomes its JSON text ({@code 1 -> "1"});</li>
 *   <li>tuple (a struct of {@code field1..n}): array; UDT: object by field name;</li>
 *   <li>elements: numbers as JSON numbers (float with float precision), NaN and infinities as
 *       strings, blob as {@code "0x<hex>"}, timestamp ({@code io.debezium.time.Timestamp}) as an
 *       ISO-8601 UTC string with milliseconds, date as {@code "yyyy-mm-dd"}, uuid, inet, decimal
 *       and varint as the agent's strings, time and duration as integer nanoseconds.</li>
 * </ul>
 */
final class CqlJson {

    private static final Pattern TUPLE_FIELD = Pattern.compile("field[0-9]+");
    private static final char[] HEX = "0123456789abcdef".toCharArray();
    static final String TIMESTAMP = "io.debezium.time.Timestamp";
    static final String DATE = "io.debezium.time.Date";

    private CqlJson() {
    }

    static String render(Object value, Schema schema) {
        return render(value, schema, false);
    }

    /**
     * {@code rawDates}: every {@code io.debezium.time.Date} value is Cassandra's raw day number
     * (days + 2^31, the Cassandra 4.1 agent's) and is written as the date it stands for.
     */
    static String render(Object value, Schema schema, boolean rawDates) {
        StringBuilder out = new StringBuilder(64);
        append(out, value, schema, rawDates);
        return out.toString();
    }

    static void append(StringBuilder out, Object value, Schema schema) {
        append(out, value, schema, false);
    }

    private static boolean isTuple(Schema schema) {
        List<Field> fields = schema.fields();
        if (fields.isEmpty()) {
            return false;
        }
        for (Field f : fields) {
            if (!TUPLE_FIELD.matcher(f.name()).matches()) {
                return false;
            }
        }
        return true;
    }

    static void append(StringBuilder out, Object value, Schema schema, boolean rawDates) {
        if (value == null) {
            out.append("null");
            return;
        }
        switch (schema.type()) {
            case ARRAY -> {
                out.append('[');
                boolean first = true;
                for (Object item : (Collection<?>) value) {
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    append(out, item, schema.valueSchema(), rawDates);
                }
                out.append(']');
            }
            case MAP -> {
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    Object k = e.getKey();
                    String key;
                    if (k instanceof String s) {
                        key = s;
                    }
                    else {
                        StringBuilder kb = new StringBuilder();
                        append(kb, k, schema.keySchema(), rawDates);
                        key = kb.toString();
                        if (key.length() >= 2 && key.charAt(0) == '"') {
                            key = key.substring(1, key.length() - 1);
                        }
                    }
                    Json.appendString(out, key).append(':');
                    append(out, e.getValue(), schema.valueSchema(), rawDates);
                }
                out.append('}');
            }
            case STRUCT -> {
                Struct struct = (Struct) value;
                boolean tuple = isTuple(schema);
                out.append(tuple ? '[' : '{');
                boolean first = true;
                for (Field f : schema.fields()) {
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    if (!tuple) {
                        Json.appendString(out, f.name()).append(':');
                    }
                    append(out, struct.get(f.name()), f.schema(), rawDates);
                }
                out.append(tuple ? ']' : '}');
            }
            case FLOAT32 -> {
                float f = ((Number) value).floatValue();
                if (Float.isFinite(f)) {
                    out.append(Float.toString(f));
                }
                else {
                    Json.appendString(out, Float.toString(f));
                }
            }
            case FLOAT64 -> {
                double d = ((Number) value).doubleValue();
                if (Double.isFinite(d)) {
                    out.append(Double.toString(d));
                }
                else {
                    Json.appendString(out, Double.toString(d));
                }
            }
            case BYTES -> {
                byte[] bytes;
                if (value instanceof ByteBuffer buffer) {
                    ByteBuffer copy = buffer.duplicate();
                    bytes = new byte[copy.remaining()];
                    copy.get(bytes);
                }
                else {
                    bytes = (byte[]) value;
                }
                out.append("\"0x");
                for (byte b : bytes) {
                    out.append(HEX[(b >> 4) & 0xF]).append(HEX[b & 0xF]);
                }
                out.append('"');
            }
            case INT64 -> {
                if (TIMESTAMP.equals(schema.name()) && value instanceof Long ms) {
                    Json.appendString(out, Instant.ofEpochMilli(ms).toString());
                }
                else if (value instanceof java.util.Date date) {
                    Json.appendString(out, date.toInstant().toString());
                }
                else {
                    out.append(((Number) value).longValue());
                }
            }
            case INT32 -> {
                if (DATE.equals(schema.name()) && value instanceof Integer days) {
                    Json.appendString(out, LocalDate.ofEpochDay(rawDates ? days ^ Integer.MIN_VALUE : days).toString());
                }
                else if (value instanceof java.util.Date date) {
                    Json.appendString(out, LocalDate.ofEpochDay(Math.floorDiv(date.getTime(), 86_400_000L)).toString());
                }
                else {
                    out.append(((Number) value).longValue());
                }
            }
            default -> Json.appendValue(out, value);
        }
    }
}
