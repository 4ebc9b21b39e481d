package io.casscdcpg.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.junit.jupiter.api.Test;

import com.fasterxml.jackson.databind.ObjectMapper;

class JsonTest {

    private static final ObjectMapper MAPPER = new ObjectMapper();

    @Test
    void everyUtf16CodeUnitRoundTripsThroughJackson() throws Exception {
        StringBuilder all = new StringBuilder(0x10000);
        for (int c = 0; c <= 0xFFFF; c++) {
            all.append((char) c);
        }
        String quoted = Json.quote(all.toString());
        assertEquals(all.toString(), MAPPER.readTree(quoted).textValue());
        for (int i = 1; i < quoted.length() - 1; i++) {
            assertFalse(quoted.charAt(i) < 0x20, "raw control character at " + i);
        }
        // a supplementary character (surrogate pair) passes through unchanged
        String emoji = "a\uD83D\uDE00b";
        assertEquals("\"" + emoji + "\"", Json.quote(emoji));
        assertEquals(emoji, MAPPER.readTree(Json.quote(emoji)).textValue());
    }

    @Test
    void shortEscapesAreUsed() {
        assertEquals("\"\\\"\\\\\\n\\r\\t\\b\\f\\u0000\\u001f\\u2028/\"", Json.quote("\"\\\n\r\t\b\f\u0000\u001f\u2028/"));
    }

    @Test
    void valuesRenderCanonically() throws Exception {
        Schema udt = SchemaBuilder.struct().field("b", Schema.INT32_SCHEMA).field("a", Schema.OPTIONAL_STRING_SCHEMA).build();
        Map<Object, Object> m1 = new LinkedHashMap<>();
        m1.put("z", 1);
        m1.put("a", 2);
        Map<Object, Object> m2 = new LinkedHashMap<>();
        m2.put("a", 2);
        m2.put("z", 1);
        assertEquals(render(m1), render(m2));
        assertEquals("[[\"a\",2],[\"z\",1]]", render(m1));
        assertEquals("{\"b\":1,\"a\":null}", render(new Struct(udt).put("b", 1)));
        assertEquals("[1,\"x\",true,null]", render(java.util.Arrays.asList(1L, "x", true, null)));
        assertEquals("\"AQID\"", render(new byte[]{1, 2, 3}));
        assertEquals("\"AQID\"", render(ByteBuffer.wrap(new byte[]{1, 2, 3})));
        assertEquals("1.5", render(1.5d));
        assertEquals("\"NaN\"", render(Double.NaN));
        assertEquals("\"1.10\"", render(new java.math.BigDecimal("1.10")));
        assertEquals("7", render((short) 7));
        assertEquals("1000", render(new java.util.Date(1000L)));
        // every rendering is valid JSON
        for (Object v : List.of(m1, new Struct(udt).put("b", 1), 1.5d, "é\u0001")) {
            MAPPER.readTree(render(v).getBytes(StandardCharsets.UTF_8));
        }
    }

    private static String render(Object v) {
        return Json.appendValue(new StringBuilder(), v).toString();
    }
}
