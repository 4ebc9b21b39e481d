package io.casscdcpg.lwwsink;

import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.Date;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.errors.DataException;

/**
 * Values in PostgreSQL's COPY text format (one row: fields joined by a tab, ended by a newline;
 * {@code \N} is null; backslash, tab, newline, carriage return, backspace, form feed and vertical
 * tab are written as backslash escapes). Pure; the types are those of the row contract
 * (docs/decisions/0002-row-contract.md): collections arrive as JSON text already.
 */
public final class CopyText {

    public static final String NULL = "\\N";

    static final String DEBEZIUM_TIMESTAMP = "io.debezium.time.Timestamp";
    static final String DEBEZIUM_DATE = "io.debezium.time.Date";
    static final String CONNECT_TIMESTAMP = org.apache.kafka.connect.data.Timestamp.LOGICAL_NAME;
    static final String CONNECT_DATE = org.apache.kafka.connect.data.Date.LOGICAL_NAME;

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private CopyText() {
    }

    /** Appends one field: {@code value} read with {@code schema} (its logical name decides dates). */
    public static void appendField(StringBuilder out, Schema schema, Object value) {
        if (value == null) {
            out.append(NULL);
            return;
        }
        String logical = schema == null ? null : schema.name();
        if (DEBEZIUM_TIMESTAMP.equals(logical) && value instanceof Long ms) {
            out.append(timestamp(Instant.ofEpochMilli(ms)));
        } else if (DEBEZIUM_DATE.equals(logical) && value instanceof Integer days) {
            out.append(date(LocalDate.ofEpochDay(days)));
        } else if (value instanceof Date d) {
            // Connect's own Timestamp and Date logical types
            out.append(CONNECT_DATE.equals(logical)
                    ? date(LocalDate.ofInstant(d.toInstant(), ZoneOffset.UTC))
                    : timestamp(d.toInstant()));
        } else if (value instanceof String s) {
            escape(out, s);
        } else if (value instanceof Boolean b) {
            out.append(b ? 't' : 'f');
        } else if (value instanceof Byte || value instanceof Short || value instanceof Integer
                || value instanceof Long) {
            out.append(value);
        } else if (value instanceof Float || value instanceof Double) {
            // Java's NaN, Infinity and -Infinity are PostgreSQL's spellings too
            out.append(value);
        } else if (value instanceof BigDecimal d) {
            out.append(d.toPlainString());
        } else if (value instanceof byte[] bytes) {
            bytea(out, ByteBuffer.wrap(bytes));
        } else if (value instanceof ByteBuffer buffer) {
            bytea(out, buffer.duplicate());
        } else {
            throw new DataException("cannot write a " + value.getClass().getName()
                    + " into a COPY row (schema " + (schema == null ? "none" : schema.type() + " " + logical) + ")");
        }
    }

    /** A string field: escapes per COPY text format; a NUL character cannot be stored. */
    static void escape(StringBuilder out, String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '\\' -> out.append("\\\\");
                case '\t' -> out.append("\\t");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                case '\u000b' -> out.append("\\v");
                case '\u0000' -> throw new DataException("a text value holds a NUL character, which PostgreSQL cannot store");
                default -> out.append(c);
            }
        }
    }

    /** bytea in hex format; the leading backslash is itself escaped for COPY. */
    static void bytea(StringBuilder out, ByteBuffer buffer) {
        out.append("\\\\x");
        while (buffer.hasRemaining()) {
            int b = buffer.get() & 0xff;
            out.append(HEX[b >>> 4]).append(HEX[b & 0xf]);
        }
    }

    /** {@code yyyy-mm-dd}, with {@code BC} for years before 1 (ISO year 0 is 1 BC), any year. */
    static String date(LocalDate d) {
        int y = d.getYear();
        return String.format("%04d-%02d-%02d%s", y > 0 ? y : 1 - y, d.getMonthValue(), d.getDayOfMonth(),
                y > 0 ? "" : " BC");
    }

    /** A timestamptz literal in UTC with milliseconds, BC-aware like {@link #date}. */
    static String timestamp(Instant instant) {
        LocalDateTime t = LocalDateTime.ofInstant(instant, ZoneOffset.UTC);
        int y = t.getYear();
        return String.format("%04d-%02d-%02d %02d:%02d:%02d.%03d+00%s", y > 0 ? y : 1 - y, t.getMonthValue(),
                t.getDayOfMonth(), t.getHour(), t.getMinute(), t.getSecond(), t.getNano() / 1_000_000,
                y > 0 ? "" : " BC");
    }
}
