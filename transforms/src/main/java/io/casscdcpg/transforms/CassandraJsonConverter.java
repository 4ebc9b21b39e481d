package io.casscdcpg.transforms;

import java.io.IOException;
import java.math.BigDecimal;
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
import com.fasterxml.jackson.databind.node.TextNode;

/**
 * Kafka's {@link JsonConverter} for the agent's records ({@code {"schema": ..., "payload": ...}}),
 * keys and values alike, with two differences:
 * <ul>
 * <li>a float or double written as {@code "NaN"}, {@code "Infinity"} or {@code "-Infinity"} (how the
 * agent's Jackson writes non-finite numbers) is read as that value; the stock converter reads
 * {@code 0.0}, a silent corruption the type matrix test (tests/e2e/test_type_matrix.py) caught;</li>
 * <li>speed: the stock converter parses every record's ~3 KB schema into a tree and looks it up in
 * its cache by deep hash and deep equality, for every record. Here the schema's bytes are the cache
 * key (one pass over a byte range) and only the payload is parsed. This halved the worker's CPU
 * per record (docs/decisions/0040-sink-throughput.md). When the record's schema bytes are the
 * topic's last (decision 0135), the payload is read with the streaming parser straight into the
 * Connect value, guided by the schema, with no tree in between (decision 0153); whatever that read
 * does not take exactly goes through the tree, so values and errors stay those of the tree path.</li>
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
    /** What {@link #stream} returns when the tree path has to decide. */
    private static final Object MISMATCH = new Object();
    private static final byte[] SCHEMA_PREFIX = "{\"schema\":".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] PAYLOAD_INFIX = ",\"payload\":".getBytes(StandardCharsets.US_ASCII);

    private boolean envelope;
    private ConverterType role = ConverterType.VALUE;
    /** Records that took the full path (not the topic's last schema): what the tests observe. */
    private long fullPaths;
    /** Fast-path records the streaming read left to the tree path (tests: the streaming read's hits). */
    private long streamMisses;
    /** Whether the fast path reads the payload with the streaming parser (tests and the benchmark
     *  turn it off to compare with the tree path). */
    private boolean streamPayloads = true;
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
        streamMisses = 0;
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
            int from = payloadStart(value, known.schemaJson());
            if (from >= 0) {
                if (streamPayloads) {
                    Object streamed = stream(known.schema(), value, from);
                    if (streamed != MISMATCH) {
                        return new SchemaAndValue(known.schema(), streamed);
                    }
                    streamMisses++;
                }
                JsonNode payload = payloadTree(value, from);
                if (payload != null) {
                    return new SchemaAndValue(known.schema(), convert(known.schema(), payload, ""));
                }
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

    /** How many fast-path records since {@link #configure} the streaming read left to the tree path. */
    long streamMisses() {
        return streamMisses;
    }

    /** Off: the fast path parses the payload into a tree first, as before decision 0153 (tests, benchmark). */
    void streamPayloads(boolean on) {
        streamPayloads = on;
    }

    /**
     * Where the payload of a compact envelope ({@code {"schema":<schema>,"payload":<payload>}}) whose
     * schema bytes equal {@code schemaJson}, the last schema seen on the topic, starts; -1 when the
     * record is not exactly that (the full path then decides, with its errors). No tokenizing of the
     * ~3 KB schema: one vectorized byte comparison. {@code schemaJson} was a complete JSON object when
     * it was stored, so equal bytes end at the same place (decision 0135). The payload ends before the
     * record's last byte, its closing brace.
     */
    private static int payloadStart(byte[] value, byte[] schemaJson) {
        int start = SCHEMA_PREFIX.length;
        int end = start + schemaJson.length;
        int from = end + PAYLOAD_INFIX.length;
        int last = value.length - 1;
        if (from >= last || value[last] != '}' || !startsAt(value, 0, SCHEMA_PREFIX)
                || !Arrays.equals(value, start, end, schemaJson, 0, schemaJson.length)
                || !startsAt(value, end, PAYLOAD_INFIX)) {
            return -1;
        }
        return from;
    }

    /** The payload from {@code from} to the record's closing brace as a tree; null when it is not
     *  exactly one JSON value (the full path reports it). */
    private static JsonNode payloadTree(byte[] value, int from) {
        int last = value.length - 1;
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

    /**
     * The payload from {@code from} to the record's closing brace read with the streaming parser
     * straight into the Connect value the tree path ({@link #convert}) gives for it, guided by
     * {@code schema}: no intermediate tree (decision 0153). {@link #MISMATCH} for anything it does
     * not take exactly as the tree path does (a token that does not fit the schema, a required value
     * missing, a number beyond a long, invalid JSON, trailing content): the caller then takes the
     * tree path, which gives that record's value or error exactly as before.
     */
    private Object stream(Schema schema, byte[] value, int from) {
        int last = value.length - 1;
        try (JsonParser p = MAPPER.getFactory().createParser(value, from, last - from)) {
            JsonToken t = p.nextToken();
            if (t == null) {
                return MISMATCH;
            }
            Object out = read(schema, p, t);
            return p.nextToken() == null ? out : MISMATCH;
        }
        catch (IOException | RuntimeException e) {
            return MISMATCH; // Mismatch, or Struct.put's validation, or invalid JSON: the tree path decides
        }
    }

    /** The value of the token {@code t} (and its children) for {@code schema}, as {@link #convert}. */
    private Object read(Schema schema, JsonParser p, JsonToken t) throws IOException {
        if (t == JsonToken.VALUE_NULL) {
            return absent(schema);
        }
        String logical = schema.name();
        if (logical != null) {
            switch (logical) {
                case Decimal.LOGICAL_NAME -> {
                    // as JsonNode.decimalValue() of the tree's IntNode/LongNode/DoubleNode
                    if (t == JsonToken.VALUE_NUMBER_FLOAT) {
                        return BigDecimal.valueOf(p.getDoubleValue());
                    }
                    if (t == JsonToken.VALUE_NUMBER_INT) {
                        return BigDecimal.valueOf(longValue(p, t));
                    }
                    return Decimal.toLogical(schema, binary(p, t));
                }
                case Date.LOGICAL_NAME -> {
                    return Date.toLogical(schema, (int) longValue(p, t));
                }
                case Time.LOGICAL_NAME -> {
                    return Time.toLogical(schema, (int) longValue(p, t));
                }
                case Timestamp.LOGICAL_NAME -> {
                    return Timestamp.toLogical(schema, longValue(p, t));
                }
                default -> {
                    // a plain Connect type carrying a name (io.debezium.*): read by its type
                }
            }
        }
        switch (schema.type()) {
            case BOOLEAN -> {
                if (t == JsonToken.VALUE_TRUE) {
                    return Boolean.TRUE;
                }
                if (t == JsonToken.VALUE_FALSE) {
                    return Boolean.FALSE;
                }
                throw Mismatch.INSTANCE;
            }
            case INT8 -> {
                return (byte) longValue(p, t);
            }
            case INT16 -> {
                return (short) longValue(p, t);
            }
            case INT32 -> {
                return (int) longValue(p, t);
            }
            case INT64 -> {
                return longValue(p, t);
            }
            case FLOAT32 -> {
                return (float) doubleValue(p, t);
            }
            case FLOAT64 -> {
                return doubleValue(p, t);
            }
            case STRING -> {
                if (t != JsonToken.VALUE_STRING) {
                    throw Mismatch.INSTANCE;
                }
                return p.getText();
            }
            case BYTES -> {
                return binary(p, t);
            }
            case ARRAY -> {
                if (t != JsonToken.START_ARRAY) {
                    throw Mismatch.INSTANCE;
                }
                Schema items = schema.valueSchema();
                List<Object> list = new ArrayList<>();
                for (JsonToken e = p.nextToken(); e != JsonToken.END_ARRAY; e = p.nextToken()) {
                    list.add(read(items, p, e));
                }
                return list;
            }
            case MAP -> {
                return readMap(schema, p, t);
            }
            case STRUCT -> {
                return readStruct(schema, p, t);
            }
            default -> throw Mismatch.INSTANCE;
        }
    }

    /** Fields in any order; an unknown field is skipped and a missing one is null, as the tree's
     *  {@code get(name)}; of a repeated field the last counts, as in the tree. */
    private Struct readStruct(Schema schema, JsonParser p, JsonToken t) throws IOException {
        if (t != JsonToken.START_OBJECT) {
            throw Mismatch.INSTANCE;
        }
        List<Field> fields = schema.fields();
        Object[] values = new Object[fields.size()];
        boolean[] seen = new boolean[values.length];
        for (JsonToken n = p.nextToken(); n == JsonToken.FIELD_NAME; n = p.nextToken()) {
            Field f = schema.field(p.currentName());
            JsonToken v = p.nextToken();
            if (f == null) {
                p.skipChildren(); // not in the schema: ignored, as the tree path and the stock converter
                continue;
            }
            values[f.index()] = read(f.schema(), p, v);
            seen[f.index()] = true;
        }
        Struct struct = new Struct(schema);
        for (Field f : fields) {
            int i = f.index();
            struct.put(f, seen[i] ? values[i] : absent(f.schema()));
        }
        return struct;
    }

    /** String keys: a JSON object; other keys: an array of [key, value] pairs, as {@link #map}. */
    private Map<Object, Object> readMap(Schema schema, JsonParser p, JsonToken t) throws IOException {
        Map<Object, Object> out = new HashMap<>();
        Schema values = schema.valueSchema();
        if (schema.keySchema().type() == Schema.Type.STRING) {
            if (t != JsonToken.START_OBJECT) {
                throw Mismatch.INSTANCE;
            }
            for (JsonToken n = p.nextToken(); n == JsonToken.FIELD_NAME; n = p.nextToken()) {
                String key = p.currentName();
                out.put(key, read(values, p, p.nextToken()));
            }
            return out;
        }
        if (t != JsonToken.START_ARRAY) {
            throw Mismatch.INSTANCE;
        }
        Schema keys = schema.keySchema();
        for (JsonToken pair = p.nextToken(); pair != JsonToken.END_ARRAY; pair = p.nextToken()) {
            if (pair != JsonToken.START_ARRAY) {
                throw Mismatch.INSTANCE;
            }
            JsonToken k = p.nextToken();
            if (k == JsonToken.END_ARRAY) {
                throw Mismatch.INSTANCE;
            }
            Object key = read(keys, p, k);
            JsonToken v = p.nextToken();
            if (v == JsonToken.END_ARRAY) {
                throw Mismatch.INSTANCE;
            }
            Object val = read(values, p, v);
            if (p.nextToken() != JsonToken.END_ARRAY) {
                throw Mismatch.INSTANCE;
            }
            out.put(key, val);
        }
        return out;
    }

    /** A null or missing value, as {@link #convert} of null; a required one is the tree path's error. */
    private Object absent(Schema schema) {
        if (schema.defaultValue() != null && replaceNullWithDefault) {
            return schema.defaultValue();
        }
        if (schema.isOptional()) {
            return null;
        }
        throw Mismatch.INSTANCE;
    }

    /** An integral number within a long, as the tree's IntNode/LongNode {@code longValue()}. */
    private static long longValue(JsonParser p, JsonToken t) throws IOException {
        if (t != JsonToken.VALUE_NUMBER_INT || p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
            throw Mismatch.INSTANCE;
        }
        return p.getLongValue();
    }

    /** As {@link #floating}: a number, or the agent's "NaN", "Infinity", "-Infinity" text. */
    private static double doubleValue(JsonParser p, JsonToken t) throws IOException {
        if (t == JsonToken.VALUE_NUMBER_FLOAT) {
            return p.getDoubleValue();
        }
        if (t == JsonToken.VALUE_NUMBER_INT) {
            return longValue(p, t);
        }
        if (t == JsonToken.VALUE_STRING) {
            Double special = nonFinite(p.getText());
            if (special != null) {
                return special;
            }
        }
        throw Mismatch.INSTANCE;
    }

    /** Base64 text decoded by the very code the tree path uses ({@link TextNode#binaryValue()}). */
    private static byte[] binary(JsonParser p, JsonToken t) throws IOException {
        if (t != JsonToken.VALUE_STRING) {
            throw Mismatch.INSTANCE;
        }
        byte[] out = new TextNode(p.getText()).binaryValue();
        if (out == null) {
            throw Mismatch.INSTANCE;
        }
        return out;
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
            Double special = nonFinite(json.textValue());
            if (special != null) {
                return special;
            }
        }
        throw wrongKind(schema, json, path);
    }

    /**
     * The agent's text for a float or double JSON has no number for: "NaN", "Infinity",
     * "-Infinity" (both paths read it here); null for any other text.
     */
    static Double nonFinite(String text) {
        return switch (text) {
            case "NaN" -> Double.NaN;
            case "Infinity" -> Double.POSITIVE_INFINITY;
            case "-Infinity" -> Double.NEGATIVE_INFINITY;
            default -> null;
        };
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

    /** Thrown inside {@link #stream} when the payload does not fit what it reads: the tree path decides. */
    private static final class Mismatch extends RuntimeException {
        private static final long serialVersionUID = 1L;
        static final Mismatch INSTANCE = new Mismatch();

        private Mismatch() {
            super(null, null, false, false);
        }
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
