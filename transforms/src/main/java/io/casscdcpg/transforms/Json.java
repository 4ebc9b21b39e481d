package io.casscdcpg.transforms;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.Map;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Struct;

/**
 * The small JSON writer the transform needs: RFC 8259 string escaping and a canonical rendering of
 * Kafka Connect values. Canonical means the same logical value always renders to the same text
 * (map entries are sorted, struct fields follow their schema order), so the text can be hashed.
 *
 * <p>Kept dependency-free on purpose: the plugin ships as one small jar with nothing to relocate.
 * The escaping is checked in the tests against Jackson's parser for every UTF-16 code unit.
 */
final class Json {

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private Json() {
    }

    /** Appends {@code s} as a JSON string literal (with the surrounding quotes). */
    static StringBuilder appendString(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0, n = s.length(); i < n; i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    // Control characters must be escaped (RFC 8259 section 7). U+2028/U+2029 are
                    // legal JSON but break JavaScript consumers, so they are escaped too.
                    if (c < 0x20 || c == '\u2028' || c == '\u2029') {
                        out.append("\\u")
                                .append(HEX[(c >> 12) & 0xF])
                                .append(HEX[(c >> 8) & 0xF])
                                .append(HEX[(c >> 4) & 0xF])
                                .append(HEX[c & 0xF]);
                    }
                    else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"');
    }

    /** Returns {@code s} as a JSON string literal. */
    static String quote(String s) {
        return appendString(new StringBuilder(s.length() + 2), s).toString();
    }

    /**
     * Appends a canonical JSON rendering of a Kafka Connect value: null, strings, booleans,
     * numbers, bytes (base64 string), {@link Struct} (object in schema field order), lists
     * (arrays) and maps (array of {@code [key, value]} pairs sorted by the rendered key, since Connect
     * maps may have non-string keys and no defined order). Anything else renders as its string form.
     */
    static StringBuilder appendValue(StringBuilder out, Object value) {
        if (value == null) {
            return out.append("null");
        }
        if (value instanceof String s) {
            return appendString(out, s);
        }
        if (value instanceof Boolean b) {
            return out.append(b.booleanValue());
        }
        if (value instanceof Byte || value instanceof Short || value instanceof Integer
                || value instanceof Long) {
            return out.append(((Number) value).longValue());
        }
        if (value instanceof Float || value instanceof Double) {
            double d = ((Number) value).doubleValue();
            // NaN and infinities have no JSON number form: render them as strings.
            return Double.isFinite(d) ? out.append(d) : appendString(out, Double.toString(d));
        }
        if (value instanceof java.math.BigDecimal bd) {
            return appendString(out, bd.toPlainString());
        }
        if (value instanceof Number n) {
            return appendString(out, n.toString());
        }
        if (value instanceof byte[] bytes) {
            return appendString(out, Base64.getEncoder().encodeToString(bytes));
        }
        if (value instanceof ByteBuffer buffer) {
            ByteBuffer copy = buffer.duplicate();
            byte[] bytes = new byte[copy.remaining()];
            copy.get(bytes);
            return appendString(out, Base64.getEncoder().encodeToString(bytes));
        }
        if (value instanceof java.util.Date date) {
            return out.append(date.getTime());
        }
        if (value instanceof Struct struct) {
            out.append('{');
            boolean first = true;
            for (Field field : struct.schema().fields()) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                appendString(out, field.name()).append(':');
                appendValue(out, struct.get(field));
            }
            return out.append('}');
        }
        if (value instanceof Collection<?> items) {
            out.append('[');
            boolean first = true;
            for (Object item : items) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                appendValue(out, item);
            }
            return out.append(']');
        }
        if (value instanceof Map<?, ?> map) {
            List<String[]> entries = new ArrayList<>(map.size());
            for (Map.Entry<?, ?> e : map.entrySet()) {
                entries.add(new String[]{
                        appendValue(new StringBuilder(), e.getKey()).toString(),
                        appendValue(new StringBuilder(), e.getValue()).toString()});
            }
            entries.sort((a, b) -> a[0].compareTo(b[0]));
            out.append('[');
            for (int i = 0; i < entries.size(); i++) {
                if (i > 0) {
                    out.append(',');
                }
                out.append('[').append(entries.get(i)[0]).append(',').append(entries.get(i)[1]).append(']');
            }
            return out.append(']');
        }
        return appendString(out, value.toString());
    }
}
