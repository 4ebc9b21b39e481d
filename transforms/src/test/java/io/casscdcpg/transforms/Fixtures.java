package io.casscdcpg.transforms;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.AbstractMap.SimpleEntry;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Loads the event fixtures in src/test/resources/events/: one Kafka record per file, as
 * {"topic": ..., "key": {"schema", "payload"}, "value": {"schema", "payload"} | null}, each part in
 * Kafka Connect's JsonConverter format with schemas enabled (what the agent's JsonConverter writes).
 */
final class Fixtures {

    static final int PARTITION = 0;
    static final long OFFSET = 42L;
    static final long TIMESTAMP = 1764080000999L;

    private static final ObjectMapper MAPPER = new ObjectMapper();

    private Fixtures() {
    }

    static SinkRecord load(String name) {
        return fromJson(readTree(name));
    }

    /** A record from a fixture document (e.g. a captured one edited in a test). */
    static SinkRecord fromJson(JsonNode doc) {
        String topic = doc.path("topic").asText(null);
        if (topic == null) {
            throw new IllegalArgumentException("fixture has no topic");
        }
        SchemaAndValue key = convert(topic, doc.get("key"), true);
        SchemaAndValue value = convert(topic, doc.get("value"), false);
        // captured fixtures (scripts/capture_events.py) also carry partition and offset
        int partition = doc.path("partition").canConvertToInt() ? doc.get("partition").asInt() : PARTITION;
        long offset = doc.path("offset").canConvertToLong() ? doc.get("offset").asLong() : OFFSET;
        return new SinkRecord(topic, partition, key.schema(), key.value(), value.schema(), value.value(),
                offset, TIMESTAMP, TimestampType.CREATE_TIME);
    }

    /** The fixture's whole JSON document (raw payloads, as the agent wrote them). */
    static JsonNode raw(String name) {
        return readTree(name);
    }

    /** The fixture's "scenario" (captured fixtures name the CQL step that produced them), or null. */
    static String scenario(String name) {
        return readTree(name).path("scenario").asText(null);
    }

    /** Names (without .json) of the fixtures captured from the real agent: real_*.json. */
    static List<String> captured() {
        return names("real_");
    }

    /** Names (without .json) of every fixture, captured or written by hand. */
    static List<String> all() {
        return names("");
    }

    private static List<String> names(String prefix) {
        java.net.URL dir = Fixtures.class.getResource("/events");
        if (dir == null || !"file".equals(dir.getProtocol())) {
            return List.of();
        }
        try (var files = java.nio.file.Files.list(java.nio.file.Path.of(dir.toURI()))) {
            return files.map(f -> f.getFileName().toString())
                    .filter(n -> n.startsWith(prefix) && n.endsWith(".json"))
                    .map(n -> n.substring(0, n.length() - ".json".length()))
                    .sorted()
                    .toList();
        }
        catch (IOException | java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static JsonNode readTree(String name) {
        String path = "/events/" + name + ".json";
        try (InputStream in = Fixtures.class.getResourceAsStream(path)) {
            if (in == null) {
                throw new IllegalArgumentException("no fixture " + path);
            }
            return MAPPER.readTree(in);
        }
        catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static SchemaAndValue convert(String topic, JsonNode part, boolean isKey) {
        // the sink's converter: the stock one reads the agent's "NaN"/"Infinity" as 0.0
        JsonConverter converter = new CassandraJsonConverter();
        converter.configure(Map.of("schemas.enable", "true"), isKey);
        try {
            byte[] bytes = part == null || part.isNull() ? null : MAPPER.writeValueAsBytes(part);
            return converter.toConnectData(topic, bytes);
        }
        catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        finally {
            converter.close();
        }
    }

    /** The struct's fields as ordered (name, value) entries, so one assertEquals checks all of them. */
    static List<Map.Entry<String, Object>> entries(Struct struct) {
        List<Map.Entry<String, Object>> out = new ArrayList<>();
        for (Field f : struct.schema().fields()) {
            out.add(new SimpleEntry<>(f.name(), struct.get(f)));
        }
        return out;
    }

    static Map.Entry<String, Object> e(String name, Object value) {
        return new SimpleEntry<>(name, value);
    }

    static String sha256Hex(String text) {
        try {
            byte[] hash = MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
            StringBuilder sb = new StringBuilder();
            for (byte b : hash) {
                sb.append(String.format("%02x", b));
            }
            return sb.toString();
        }
        catch (NoSuchAlgorithmException ex) {
            throw new IllegalStateException(ex);
        }
    }
}
