package io.casscdcpg.lwwsink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.time.LocalDate;
import java.util.Date;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Timestamp;
import org.apache.kafka.connect.errors.DataException;
import org.junit.jupiter.api.Test;

class CopyTextTest {

    private static String field(Schema schema, Object value) {
        StringBuilder b = new StringBuilder();
        CopyText.appendField(b, schema, value);
        return b.toString();
    }

    @Test
    void nullIsBackslashN() {
        assertEquals("\\N", field(Schema.OPTIONAL_STRING_SCHEMA, null));
        // the text "\N" is not null: its backslash is escaped
        assertEquals("\\\\N", field(Schema.OPTIONAL_STRING_SCHEMA, "\\N"));
    }

    @Test
    void escapesEverySpecialCharacter() {
        assertEquals("a\\tb\\nc\\rd\\\\e\\bf\\fg\\vh", field(Schema.STRING_SCHEMA, "a\tb\nc\rd\\e\bf\fg\u000bh"));
        assertEquals("héllo ☃ 𝄞 'q' \"d\" ,;|", field(Schema.STRING_SCHEMA, "héllo ☃ 𝄞 'q' \"d\" ,;|"));
        assertEquals("", field(Schema.STRING_SCHEMA, ""));
    }

    @Test
    void refusesNul() {
        assertThrows(DataException.class, () -> field(Schema.STRING_SCHEMA, "a\u0000b"));
    }

    @Test
    void numbersAndBooleans() {
        assertEquals("t", field(Schema.BOOLEAN_SCHEMA, true));
        assertEquals("f", field(Schema.BOOLEAN_SCHEMA, false));
        assertEquals("-128", field(Schema.INT8_SCHEMA, (byte) -128));
        assertEquals("-9223372036854775808", field(Schema.INT64_SCHEMA, Long.MIN_VALUE));
        assertEquals("NaN", field(Schema.FLOAT64_SCHEMA, Double.NaN));
        assertEquals("Infinity", field(Schema.FLOAT64_SCHEMA, Double.POSITIVE_INFINITY));
        assertEquals("-Infinity", field(Schema.FLOAT32_SCHEMA, Float.NEGATIVE_INFINITY));
        assertEquals("1.0E-10", field(Schema.FLOAT64_SCHEMA, 1e-10));
        assertEquals("0.00000000000000000001", field(null, new BigDecimal("1E-20")));
    }

    @Test
    void byteaInHexWithTheBackslashEscaped() {
        assertEquals("\\\\x00ff7f", field(Schema.BYTES_SCHEMA, new byte[] {0, (byte) 0xff, 0x7f}));
        ByteBuffer buffer = ByteBuffer.wrap(new byte[] {9, 1, 2, 9}, 1, 2);
        assertEquals("\\\\x0102", field(Schema.BYTES_SCHEMA, buffer));
        assertEquals(1, buffer.position()); // the record's buffer is not consumed
        assertEquals("\\\\x", field(Schema.BYTES_SCHEMA, new byte[0]));
    }

    @Test
    void debeziumTimestampsAndDatesAnyYear() {
        Schema ts = SchemaBuilder.int64().name(CopyText.DEBEZIUM_TIMESTAMP).optional().build();
        Schema date = SchemaBuilder.int32().name(CopyText.DEBEZIUM_DATE).optional().build();
        assertEquals("1969-12-31 23:59:59.999+00", field(ts, -1L));
        assertEquals("2024-02-29 12:00:00.123+00",
                field(ts, Instant.parse("2024-02-29T12:00:00.123Z").toEpochMilli()));
        assertEquals("10000-01-01 00:00:00.000+00",
                field(ts, Instant.parse("+10000-01-01T00:00:00Z").toEpochMilli()));
        assertEquals("0001-01-01 00:00:00.000+00 BC",
                field(ts, Instant.parse("0000-01-01T00:00:00Z").toEpochMilli()));
        assertEquals("1969-07-20", field(date, -165));
        assertEquals("0001-12-31 BC", field(date, (int) LocalDate.of(0, 12, 31).toEpochDay()));
        // without the logical name an int64 is a number (time and duration are stored raw)
        assertEquals("-1", field(Schema.INT64_SCHEMA, -1L));
    }

    @Test
    void connectLogicalTypes() {
        assertEquals("1970-01-01 00:00:01.000+00", field(Timestamp.SCHEMA, new Date(1000)));
        assertEquals("1970-01-02", field(org.apache.kafka.connect.data.Date.SCHEMA, new Date(86_400_000L)));
    }

    @Test
    void refusesStructuredValues() {
        assertThrows(DataException.class, () -> field(null, java.util.List.of(1)));
    }
}
