package io.casscdcpg.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.json.JsonConverter;
import org.junit.jupiter.api.Test;

class CassandraJsonConverterTest {

    private static final String EVENT = """
            {"schema": {"type": "struct", "fields": [
               {"field": "db", "type": "double", "optional": true},
               {"field": "f", "type": "float", "optional": true},
               {"field": "l", "type": "array", "optional": true, "items": {"type": "double", "optional": true}},
               {"field": "t", "type": "struct", "optional": true, "fields": [
                  {"field": "field1", "type": "float", "optional": true},
                  {"field": "field2", "type": "string", "optional": true}]},
               {"field": "m", "type": "map", "optional": true, "keys": {"type": "string"}, "values": {"type": "double", "optional": true}},
               {"field": "s", "type": "string", "optional": true},
               {"field": "ok", "type": "double", "optional": true}]},
             "payload": {"db": "NaN", "f": "-Infinity", "l": [1.5, "Infinity"], "t": {"field1": "NaN", "field2": "NaN"},
                         "m": {"a": "-Infinity"}, "s": "NaN", "ok": 2.5}}
            """;

    @Test
    void nonFiniteNumbersSurviveWhereTheStockConverterReadsZero() {
        byte[] bytes = EVENT.getBytes(StandardCharsets.UTF_8);
        JsonConverter stock = new JsonConverter();
        stock.configure(Map.of("schemas.enable", "true"), false);
        assertEquals(0.0, ((Struct) stock.toConnectData("t", bytes).value()).getFloat64("db"),
                "the stock converter's bug this class exists for");

        CassandraJsonConverter conv = new CassandraJsonConverter();
        conv.configure(Map.of("schemas.enable", "true"), false);
        SchemaAndValue out = conv.toConnectData("t", bytes);
        Struct v = (Struct) out.value();
        assertTrue(Double.isNaN(v.getFloat64("db")));
        assertEquals(Float.NEGATIVE_INFINITY, v.getFloat32("f"));
        assertEquals(List.of(1.5, Double.POSITIVE_INFINITY), v.getArray("l"));
        assertTrue(Float.isNaN(v.getStruct("t").getFloat32("field1")));
        assertEquals("NaN", v.getStruct("t").getString("field2"), "strings stay strings");
        assertEquals(Double.NEGATIVE_INFINITY, v.getMap("m").get("a"));
        assertEquals("NaN", v.getString("s"));
        assertEquals(2.5, v.getFloat64("ok"));
        v.validate();
    }
}
