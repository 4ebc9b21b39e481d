package io.casscdcpg.transforms;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.kafka.connect.data.Date;
import org.apache.kafka.connect.data.Decimal;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.data.Time;
import org.apache.kafka.connect.data.Timestamp;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.storage.ConverterType;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.json.JsonConverterConfig;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Kafka's {@link JsonConverter} for the agent's records ({@code {"schema": ..., "payload": ...}}),
 * keys and values alike, with two differences:
 * <ul>
 * <li>a float or double written as {@code "NaN"}, {@code "Infinity"} or {@code "-Infinity"} (how the
 * agent's Jackson writes non-finite numbers) is read as that value; the stock converter reads
 * {@code 0.0}, a silent corruption the type matrix test (tests/e2e/test_type_matrix.py) caught;</li>
 * <li>speed: the stock converter parses every record's ~3 KB schema into a tree and looks it up in
 * its cache by deep hash and deep equality, for every record. Here the schema's bytes are the cache
 * key (one pass over a byte range) and only the payload is parsed into a tree. This halved the
 * worker's CPU per record (docs/decisions/0040-sink-throughput.md).</li>
 * </ul>
 * Both connector templates use it as {@code key.converter} and {@code value.converter}
 * (decision 0147). Connect configures one instance per role ({@code configure(configs, isKey)} sets
 * {@code converter.type}) and per task, so the fast path's "last schema of the topic" is per topic
 * and per role: a key's schema never evicts the value's. Stock {@code toConnectData} does not depend
 * on the role; a null record (a null key, a tombstone's value) is {@link SchemaAndValue#NULL}, as
 * stock.
 * Anything that is not such an envelope (schemas disabled, a fixed {@code schema.content}, a null
 * record, other fields) goes to the stock converter, so its behaviour and messages stay. The values
 * produced are those of the stock converter (CassandraJsonConverterTest compares them on every
 * captured event) except that a JSON value of the wrong kind (text in an int field) is an error
 * instead of a silent 0.
 */
public class CassandraJsonConverter extends JsonConverter {

    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final byte[] SCHEMA_PREFIX = "{\"schema\":".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] PAYLOAD_INFIX = ",\"payload\":".getBytes(StandardCharsets.US_ASCII);

    private boolean envelope;
    private ConverterType role = ConverterType.VALUE;
    /** Records that took the full path (not the topic's last schema): what the tests observe. */
    private long fullPaths;
    private boolean replaceNullWithDefault = JsonConverterConfig.REPLACE_NULL_WITH_DEFAULT_DEFAULT;
    private Map<SchemaBytes, Schema> schemas = Collections.emptyMap();
    /** Per topic, the last compact envelope's schema bytes and schema: the fast path's key. */
    private final Map<String, Known> lastByTopic = new ConcurrentHashMap<>();
    private int schemaCapacity = JsonConverterConfig.SCHEMAS_CACHE_SIZE_DEFAULT;

    @Override
    public void configure(Map<String, ?> configs) {
        super.configure(configs);
        JsonConverterConfig config = new JsonConverterConfig(configs);
        envelope = config.schemasEnabled() && config.schemaContent() == null;
        role = config.type();
        fullPaths = 0;
        replaceNullWithDefault = config.replaceNullWithDefault();
        int capacity = config.schemaCacheSize();
        schemaCapacity = Math.max(1, capacity);
        lastByTopic.clear();
        schemas = Collections.synchronizedMap(new LinkedHashMap<>(64, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<SchemaBytes, Schema> eldest) {
                return size() > capacity;
            }
        });
    }

    @Override
    public SchemaAndValue toConnectData(String topic, byte[] value) {
        if (!envelope || value == null) {
            return super.toConnectData(topic, value);
        }
        Known known = topic == null ? null : lastByTopic.get(topic);
        if (known != null) {
            JsonNode payload = samePrefix(value, known.schemaJson());
            if (payload != null) {
                return new SchemaAndValue(known.schema(), convert(known.schema(), payload, ""));
            }
        }
        fullPaths++;
        Envelope env = split(value);
        if (env == null) {
            return super.toConnectData(topic, value); // not the envelope: the stock error message
        }
        Schema schema = schemaOf(value, env);
        if (schema == null) {
            return super.toConnectData(topic, value);
        }
        SchemaAndValue out = new SchemaAndValue(schema, convert(schema, env.payload, ""));
        if (topic != null && env.start == SCHEMA_PREFIX.length && startsAt(value, 0, SCHEMA_PREFIX)
                && startsAt(value, env.end, PAYLOAD_INFIX)) {
            if (lastByTopic.size() >= schemaCapacity) {
                lastByTopic.clear();
            }
            lastByTopic.put(topic, new Known(Arrays.copyOfRange(value, env.start, env.end), schema));
        }
        return out;
    }

    /** Whether this instance converts keys ({@code converter.type=key}) or values. */
    ConverterType role() {
        return role;
    }

    /** How many records since {@link #configure} took the full path (tests: the fast path's hits). */
    long fullPaths() {
        return fullPaths;
    }

    /**
     * The payload of a compact envelope ({@code {"schema":<schema>,"payload":<payload>}}) whose
     * schema bytes equal {@code schemaJson}, the last schema seen on the topic; null when the record
     * is not exactly that (the full path then decides, with its errors). No tokenizing of the ~3 KB
     * schema: one vectorized byte comparison. {@code schemaJson} was a complete JSON object when it
     * was stored, so equal bytes end at the same place (decision 0135).
     */
    private static JsonNode samePrefix(byte[] value, byte[] schemaJson) {
        int start = SCHEMA_PREFIX.length;
        int end = start + schemaJson.length;
        int from = end + PAYLOAD_INFIX.length;
        int last = value.length - 1;
        if (from >= last || value[last] != '}' || !startsAt(value, 0, SCHEMA_PREFIX)
                || !Arrays.equals(value, start, end, schemaJson, 0, schemaJson.length)
                || !startsAt(value, end, PAYLOAD_INFIX)) {
            return null;
        }
        try (JsonParser p = MAPPER.getFactory().createParser(value, from, last - from)) {
            if (p.nextToken() == null) {
                return null;
            }
            JsonNode payload = MAPPER.readTree(p);
            return p.nextToken() == null ? payload : null;
        }
        catch (IOException e) {
            return null; // the full path reports it
        }
    }

    private static boolean startsAt(byte[] value, int at, byte[] part) {
        return at >= 0 && value.length - at >= part.length
                && Arrays.equals(value, at, at + part.length, part, 0, part.length);
    }

    /** Where the schema's bytes are, and the payload as a tree; null when not exactly an envelope. */
    private static Envelope split(byte[] value) {
        try (JsonParser p = MAPPER.getFactory().createParser(value)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            int start = -1;
            int end = -1;
            JsonNode payload = null;
            boolean sawPayload = false;
            for (JsonToken t = p.nextToken(); t == JsonToken.FIELD_NAME; t = p.nextToken()) {
                String name = p.currentName();
                JsonToken v = p.nextToken();
                if ("schema".equals(name) && start < 0 && v == JsonToken.START_OBJECT) {
                    start = (int) p.currentTokenLocation().getByteOffset();
                    p.skipChildren();
                    end = (int) p.currentTokenLocation().getByteOffset() + 1; // past the '}'
                }
                else if ("payload".equals(name) && !sawPayload) {
                    sawPayload = true;
                    payload = MAPPER.readTree(p);
                }
                else {
                    return null;
                }
            }
            if (start < 0 || !sawPayload || p.currentToken() != JsonToken.END_OBJECT || p.nextToken() != null) {
                return null;
            }
            return new Envelope(start, end, payload);
        }
        catch (IOException e) {
            throw new DataException("Converting byte[] to Kafka Connect data failed: invalid JSON", e);
        }
    }

    private Schema schemaOf(byte[] value, Envelope env) {
        SchemaBytes probe = new SchemaBytes(value, env.start, env.end);
        Schema schema = schemas.get(probe);
        if (schema == null) {
            JsonNode node;
            try {
                node = MAPPER.readTree(value, env.start, env.end - env.start);
            }
            catch (IOException e) {
                throw new DataException("Converting byte[] to Kafka Connect data failed: invalid schema JSON", e);
            }
            schema = asConnectSchema(node);
            if (schema == null) {
                return null;
            }
            schemas.put(probe.copy(), schema);
        }
        return schema;
    }

    private Object convert(Schema schema, JsonNode json, String path) {
        if (json == null || json.isNull()) {
            if (schema.defaultValue() != null && replaceNullWithDefault) {
                return schema.defaultValue();
            }
            if (schema.isOptional()) {
                return null;
            }
            throw new DataException("Invalid null value for required " + schema.type() + " field " + where(path));
        }
        String logical = schema.name();
        if (logical != null) {
            switch (logical) {
                case Decimal.LOGICAL_NAME -> {
                    // decimal.format=NUMERIC writes a number, BASE64 (the default) the unscaled bytes
                    return json.isNumber() ? json.decimalValue() : Decimal.toLogical(schema, bytes(json, path));
                }
                case Date.LOGICAL_NAME -> {
                    return Date.toLogical(schema, (int) integral(json, path, schema));
                }
                case Time.LOGICAL_NAME -> {
                    return Time.toLogical(schema, (int) integral(json, path, schema));
                }
                case Timestamp.LOGICAL_NAME -> {
                    return Timestamp.toLogical(schema, integral(json, path, schema));
                }
                default -> {
                    // a plain Connect type carrying a name (io.debezium.*): converted by its type
                }
            }
        }
        switch (schema.type()) {
            case BOOLEAN -> {
                if (!json.isBoolean()) {
                    throw wrongKind(schema, json, path);
                }
                return json.booleanValue();
            }
            case INT8 -> {
                return (byte) integral(json, path, schema);
            }
            case INT16 -> {
                return (short) integral(json, path, schema);
            }
            case INT32 -> {
                return (int) integral(json, path, schema);
            }
            case INT64 -> {
                return integral(json, path, schema);
            }
            case FLOAT32 -> {
                return (float) floating(json, path, schema);
            }
            case FLOAT64 -> {
                return floating(json, path, schema);
            }
            case STRING -> {
                if (!json.isTextual()) {
                    throw wrongKind(schema, json, path);
                }
                return json.textValue();
            }
            case BYTES -> {
                return bytes(json, path);
            }
            case ARRAY -> {
                if (!json.isArray()) {
                    throw wrongKind(schema, json, path);
                }
                List<Object> list = new ArrayList<>(json.size());
                for (int i = 0; i < json.size(); i++) {
                    list.add(convert(schema.valueSchema(), json.get(i), path + "[" + i + "]"));
                }
                return list;
            }
            case MAP -> {
                return map(schema, json, path);
            }
            case STRUCT -> {
                if (!json.isObject()) {
                    throw wrongKind(schema, json, path);
                }
                Struct struct = new Struct(schema);
                for (Field f : schema.fields()) {
                    struct.put(f, convert(f.schema(), json.get(f.name()), path.isEmpty() ? f.name() : path + "." + f.name()));
                }
                return struct;
            }
            default -> throw new DataException("Unsupported schema type " + schema.type() + " at " + where(path));
        }
    }

    private Map<Object, Object> map(Schema schema, JsonNode json, String path) {
        Map<Object, Object> out = new HashMap<>();
        if (schema.keySchema().type() == Schema.Type.STRING) {
            // string keys: a JSON object
            if (!json.isObject()) {
                throw wrongKind(schema, json, path);
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = json.fields(); it.hasNext();) {
                Map.Entry<String, JsonNode> e = it.next();
                out.put(e.getKey(), convert(schema.valueSchema(), e.getValue(), path + "[" + e.getKey() + "]"));
            }
            return out;
        }
        // other keys: an array of [key, value] pairs
        if (!json.isArray()) {
            throw wrongKind(schema, json, path);
        }
        for (JsonNode pair : json) {
            if (!pair.isArray() || pair.size() != 2) {
                throw new DataException("Found invalid map entry at " + where(path) + ": expected a [key, value] array");
            }
            out.put(convert(schema.keySchema(), pair.get(0), path + ".key"),
                    convert(schema.valueSchema(), pair.get(1), path + ".value"));
        }
        return out;
    }

    private static long integral(JsonNode json, String path, Schema schema) {
        if (!json.isIntegralNumber()) {
            throw wrongKind(schema, json, path);
        }
        return json.longValue();
    }

    private static double floating(JsonNode json, String path, Schema schema) {
        if (json.isNumber()) {
            return json.doubleValue();
        }
        if (json.isTextual()) {
            switch (json.textValue()) {
                case "NaN" -> {
                    return Double.NaN;
                }
                case "Infinity" -> {
                    return Double.POSITIVE_INFINITY;
                }
                case "-Infinity" -> {
                    return Double.NEGATIVE_INFINITY;
                }
                default -> {
                    // falls through to the error below
                }
            }
        }
        throw wrongKind(schema, json, path);
    }

    private static byte[] bytes(JsonNode json, String path) {
        try {
            byte[] out = json.binaryValue(); // base64 text, as JsonConverter writes bytes
            if (out == null) {
                throw new DataException("Invalid bytes field at " + where(path) + ": not base64 text");
            }
            return out;
        }
        catch (IOException e) {
            throw new DataException("Invalid bytes field at " + where(path), e);
        }
    }

    private static DataException wrongKind(Schema schema, JsonNode json, String path) {
        return new DataException("Expected " + schema.type() + " at " + where(path) + " but found JSON "
                + json.getNodeType());
    }

    private static String where(String path) {
        return path.isEmpty() ? "the payload" : "payload." + path;
    }

    private record Envelope(int start, int end, JsonNode payload) {
    }

    private record Known(byte[] schemaJson, Schema schema) {
    }

    /** A byte range of a record used as a map key; {@link #copy()} detaches it from the record. */
    private static final class SchemaBytes {
        private final byte[] bytes;
        private final int from;
        private final int to;
        private final int hash;

        SchemaBytes(byte[] bytes, int from, int to) {
            this.bytes = bytes;
            this.from = from;
            this.to = to;
            int h = 1;
            for (int i = from; i < to; i++) {
                h = 31 * h + bytes[i];
            }
            this.hash = h;
        }

        SchemaBytes copy() {
            return new SchemaBytes(Arrays.copyOfRange(bytes, from, to), 0, to - from);
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof SchemaBytes other && hash == other.hash
                    && Arrays.equals(bytes, from, to, other.bytes, other.from, other.to);
        }
    }
}
