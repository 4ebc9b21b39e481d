package io.casscdcpg.transforms;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.json.JsonConverter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Kafka's {@link JsonConverter} with one fix: a float or double written as {@code "NaN"},
 * {@code "Infinity"} or {@code "-Infinity"} (how the agent's JsonConverter/Jackson writes
 * non-finite numbers) is read back as that value. The stock converter reads such a text node
 * with {@code JsonNode.doubleValue()}, which is {@code 0.0}: a silent corruption that the type
 * matrix test (tests/e2e/test_type_matrix.py) caught. Everything else is the stock converter.
 */
public class CassandraJsonConverter extends JsonConverter {

    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final byte[][] MARKERS = {
        "\"NaN\"".getBytes(StandardCharsets.UTF_8),
        "Infinity\"".getBytes(StandardCharsets.UTF_8),
    };

    @Override
    public SchemaAndValue toConnectData(String topic, byte[] value) {
        SchemaAndValue out = super.toConnectData(topic, value);
        if (value == null || out.value() == null || out.schema() == null || !mayHold(value)) {
            return out;
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(value);
        }
        catch (IOException e) {
            throw new DataException("cannot re-read JSON for non-finite numbers", e);
        }
        JsonNode payload = root.has("payload") && root.has("schema") ? root.get("payload") : root;
        Object fixed = patch(out.schema(), out.value(), payload);
        return new SchemaAndValue(out.schema(), fixed);
    }

    private static boolean mayHold(byte[] value) {
        for (byte[] marker : MARKERS) {
            outer:
            for (int i = 0; i <= value.length - marker.length; i++) {
                for (int j = 0; j < marker.length; j++) {
                    if (value[i + j] != marker[j]) {
                        continue outer;
                    }
                }
                return true;
            }
        }
        return false;
    }

    static Object nonFinite(Schema schema, JsonNode json) {
        if (json == null || !json.isTextual()) {
            return null;
        }
        double d;
        switch (json.textValue()) {
            case "NaN" -> d = Double.NaN;
            case "Infinity" -> d = Double.POSITIVE_INFINITY;
            case "-Infinity" -> d = Double.NEGATIVE_INFINITY;
            default -> {
                return null;
            }
        }
        return schema.type() == Schema.Type.FLOAT32 ? (Object) (float) d : (Object) d;
    }

    @SuppressWarnings("unchecked")
    static Object patch(Schema schema, Object value, JsonNode json) {
        if (value == null || json == null || json.isNull()) {
            return value;
        }
        switch (schema.type()) {
            case FLOAT32, FLOAT64 -> {
                Object v = nonFinite(schema, json);
                return v == null ? value : v;
            }
            case STRUCT -> {
                Struct struct = (Struct) value;
                for (Field f : schema.fields()) {
                    Object child = struct.get(f);
                    Object fixed = patch(f.schema(), child, json.get(f.name()));
                    if (fixed != child) {
                        struct.put(f, fixed);
                    }
                }
                return struct;
            }
            case ARRAY -> {
                List<Object> list = (List<Object>) value;
                for (int i = 0; i < list.size() && i < json.size(); i++) {
                    Object child = list.get(i);
                    Object fixed = patch(schema.valueSchema(), child, json.get(i));
                    if (fixed != child) {
                        list.set(i, fixed);
                    }
                }
                return list;
            }
            case MAP -> {
                if (!json.isObject()) {
                    return value; // maps with non-string keys are arrays of pairs: left as they are
                }
                Map<Object, Object> map = (Map<Object, Object>) value;
                for (Map.Entry<Object, Object> e : map.entrySet()) {
                    Object fixed = patch(schema.valueSchema(), e.getValue(), json.get(String.valueOf(e.getKey())));
                    if (fixed != e.getValue()) {
                        e.setValue(fixed);
                    }
                }
                return map;
            }
            default -> {
                return value;
            }
        }
    }
}
