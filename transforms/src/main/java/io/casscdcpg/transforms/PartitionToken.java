package io.casscdcpg.transforms;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.URLDecoder;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Pattern;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;

/**
 * Cassandra's Murmur3Partitioner token of a row's partition key, computed from the Connect values
 * of the event key (decision 0154). The partition key is serialised as Cassandra serialises it
 * (one column: the value's bytes; several: per column a 2-byte big-endian length, the bytes and a
 * 0 byte), hashed with MurmurHash3 x64_128 (seed 0) as Cassandra implements it (tail bytes
 * sign-extended), and the first 64-bit half taken, {@link Long#MIN_VALUE} mapped to
 * {@link Long#MAX_VALUE}: exactly what CQL {@code token(pk...)} returns.
 *
 * <p>A key whose type the transform cannot serialise faithfully from the value it receives gives
 * no token ({@code null}), never a wrong one: frozen collections, tuples, UDTs, custom and vector
 * types, a 4.1 agent's lossy decimal (float64) and wrapped varint (int64), and a decimal whose
 * text has no fraction part (the agent writes {@code toPlainString()}, which loses a negative
 * scale: {@code 1E+3} and {@code 1000} look alike), and a composite partition key with a blob
 * component (the agent sends the whole composite buffer for the blob).
 */
final class PartitionToken {

    /** Config key listing the tables with a partition-key spec: {@code <keyspace>.<table>,...}. */
    static final String TABLES_CONFIG = "token.tables";
    /** Config key prefix of one table's spec: {@code token.table.<keyspace>.<table>}. */
    static final String TABLE_PREFIX = "token.table.";

    private static final Pattern NAME = Pattern.compile("\\w+");
    private static final Pattern IPV4 = Pattern.compile("\\d{1,3}(\\.\\d{1,3}){3}");
    private static final Pattern IPV6 = Pattern.compile("[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*");

    private PartitionToken() {
    }

    // ---- Murmur3Partitioner ---------------------------------------------------------------------

    /** The token Cassandra's Murmur3Partitioner gives a serialized partition key. */
    static long token(byte[] key) {
        return fromHash(murmur3x64First(key));
    }

    /** Murmur3Partitioner keeps {@link Long#MIN_VALUE} for the ring's minimum: that hash is MAX. */
    static long fromHash(long hash) {
        return hash == Long.MIN_VALUE ? Long.MAX_VALUE : hash;
    }

    /** First 64 bits of MurmurHash3 x64_128, seed 0, with Cassandra's sign-extended tail bytes. */
    static long murmur3x64First(byte[] data) {
        final long c1 = 0x87c37b91114253d5L;
        final long c2 = 0x4cf5ad432745937fL;
        int length = data.length;
        int blocks = length >>> 4;
        long h1 = 0;
        long h2 = 0;
        for (int i = 0; i < blocks; i++) {
            long k1 = littleEndianLong(data, i << 4);
            long k2 = littleEndianLong(data, (i << 4) + 8);
            k1 *= c1;
            k1 = Long.rotateLeft(k1, 31);
            k1 *= c2;
            h1 ^= k1;
            h1 = Long.rotateLeft(h1, 27);
            h1 += h2;
            h1 = h1 * 5 + 0x52dce729;
            k2 *= c2;
            k2 = Long.rotateLeft(k2, 33);
            k2 *= c1;
            h2 ^= k2;
            h2 = Long.rotateLeft(h2, 31);
            h2 += h1;
            h2 = h2 * 5 + 0x38495ab5;
        }
        int tail = blocks << 4;
        int rest = length & 15;
        long k1 = 0;
        long k2 = 0;
        // Cassandra widens each tail byte as a signed value (a quirk of its port, kept for
        // compatibility): a byte >= 0x80 sets every higher bit before the shift.
        for (int i = rest - 1; i >= 8; i--) {
            k2 ^= ((long) data[tail + i]) << ((i - 8) * 8);
        }
        if (rest > 8) {
            k2 *= c2;
            k2 = Long.rotateLeft(k2, 33);
            k2 *= c1;
            h2 ^= k2;
        }
        for (int i = Math.min(rest, 8) - 1; i >= 0; i--) {
            k1 ^= ((long) data[tail + i]) << (i * 8);
        }
        if (rest > 0) {
            k1 *= c1;
            k1 = Long.rotateLeft(k1, 31);
            k1 *= c2;
            h1 ^= k1;
        }
        h1 ^= length;
        h2 ^= length;
        h1 += h2;
        h2 += h1;
        h1 = fmix(h1);
        h2 = fmix(h2);
        h1 += h2;
        return h1;
    }

    private static long littleEndianLong(byte[] b, int at) {
        long v = 0;
        for (int i = 7; i >= 0; i--) {
            v = (v << 8) | (b[at + i] & 0xffL);
        }
        return v;
    }

    private static long fmix(long k) {
        k ^= k >>> 33;
        k *= 0xff51afd7ed558ccdL;
        k ^= k >>> 33;
        k *= 0xc4ceb9fe1a85ec53L;
        k ^= k >>> 33;
        return k;
    }

    /** Cassandra's partition key bytes: one component as is, several as a CompositeType value. */
    static byte[] routingKey(List<byte[]> parts) {
        if (parts.size() == 1) {
            return parts.get(0);
        }
        int size = 0;
        for (byte[] p : parts) {
            if (p.length > 0xffff) {
                return null; // a composite component longer than 65535 bytes cannot be a key
            }
            size += p.length + 3;
        }
        ByteBuffer out = ByteBuffer.allocate(size);
        for (byte[] p : parts) {
            out.putShort((short) p.length).put(p).put((byte) 0);
        }
        return out.array();
    }

    // ---- serialisation of one Connect value ------------------------------------------------------

    /** Cassandra's serialized form of one key value; {@code null} when it cannot be made faithfully. */
    @FunctionalInterface
    interface Serializer {
        byte[] bytes(Object value);
    }

    /**
     * The serializer of a CQL type as the event carries it ({@code schema}: the key field's Connect
     * schema after {@link CassandraJsonConverter}), or {@code null} when there is none.
     */
    static Serializer serializer(String cqlType, Schema schema) {
        Schema.Type t = schema.type();
        switch (cqlType) {
            case "int":
                return t == Schema.Type.INT32 ? v -> v instanceof Integer i ? ByteBuffer.allocate(4).putInt(i).array() : null : null;
            case "bigint":
            case "counter":
            case "time":
                return t == Schema.Type.INT64 ? v -> v instanceof Long l ? ByteBuffer.allocate(8).putLong(l).array() : null : null;
            case "timestamp":
                return t == Schema.Type.INT64 ? v -> timestamp(v) : null;
            case "smallint":
                return t == Schema.Type.INT16 ? v -> v instanceof Short s ? ByteBuffer.allocate(2).putShort(s).array() : null : null;
            case "tinyint":
                return t == Schema.Type.INT8 ? v -> v instanceof Byte b ? new byte[] {b} : null : null;
            case "boolean":
                return t == Schema.Type.BOOLEAN ? v -> v instanceof Boolean b ? new byte[] {(byte) (b ? 1 : 0)} : null : null;
            case "text":
            case "varchar":
            case "ascii":
                return t == Schema.Type.STRING ? v -> v instanceof String s ? s.getBytes(StandardCharsets.UTF_8) : null : null;
            case "blob":
                return t == Schema.Type.BYTES ? PartitionToken::blob : null;
            case "uuid":
            case "timeuuid":
                return t == Schema.Type.STRING ? PartitionToken::uuid : null;
            case "date":
                // days since the epoch (the 4.1 agent's raw day numbers are corrected before);
                // Cassandra stores the unsigned day number days + 2^31
                return t == Schema.Type.INT32 ? v -> v instanceof Integer d ? ByteBuffer.allocate(4).putInt(d ^ Integer.MIN_VALUE).array() : null : null;
            case "float":
                return t == Schema.Type.FLOAT32 ? v -> v instanceof Float f ? ByteBuffer.allocate(4).putFloat(f).array() : null : null;
            case "double":
                return t == Schema.Type.FLOAT64 ? v -> v instanceof Double d ? ByteBuffer.allocate(8).putDouble(d).array() : null : null;
            case "inet":
                return t == Schema.Type.STRING ? PartitionToken::inet : null;
            case "varint":
                // the 5.0 agent's exact text; the 4.1 agent's wrapped int64 is not the value
                return t == Schema.Type.STRING ? PartitionToken::varint : null;
            case "decimal":
                // the 5.0 agent's exact text; the 4.1 agent's float64 has lost digits
                return t == Schema.Type.STRING ? PartitionToken::decimal : null;
            default:
                return null; // collections, tuples, UDTs, duration, vector, custom types
        }
    }

    private static byte[] timestamp(Object v) {
        if (v instanceof Long l) {
            return ByteBuffer.allocate(8).putLong(l).array();
        }
        if (v instanceof java.util.Date d) {
            return ByteBuffer.allocate(8).putLong(d.getTime()).array();
        }
        return null;
    }

    private static byte[] blob(Object v) {
        if (v instanceof byte[] b) {
            return b;
        }
        if (v instanceof ByteBuffer bb) {
            byte[] out = new byte[bb.remaining()];
            bb.duplicate().get(out);
            return out;
        }
        return null;
    }

    private static byte[] uuid(Object v) {
        if (!(v instanceof String s) || s.length() != 36) {
            return null;
        }
        try {
            UUID u = UUID.fromString(s);
            return ByteBuffer.allocate(16).putLong(u.getMostSignificantBits()).putLong(u.getLeastSignificantBits()).array();
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    /** The agent writes {@code InetAddress.toString()}: {@code hostname/address}, usually {@code /address}. */
    private static byte[] inet(Object v) {
        if (!(v instanceof String s)) {
            return null;
        }
        String address = s.substring(s.lastIndexOf('/') + 1);
        // only an address literal: InetAddress.getByName would look a name up
        if (!IPV4.matcher(address).matches() && !IPV6.matcher(address).matches()) {
            return null;
        }
        try {
            return InetAddress.getByName(address).getAddress();
        } catch (UnknownHostException e) {
            return null;
        }
    }

    private static byte[] varint(Object v) {
        if (!(v instanceof String s)) {
            return null;
        }
        try {
            return new BigInteger(s).toByteArray(); // minimal two's complement, as Cassandra's
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private static byte[] decimal(Object v) {
        if (!(v instanceof String s) || s.indexOf('.') < 0 || s.indexOf('e') >= 0 || s.indexOf('E') >= 0) {
            // no fraction part: the scale may have been negative (1E+3 is written 1000)
            return null;
        }
        try {
            BigDecimal d = new BigDecimal(s);
            byte[] unscaled = d.unscaledValue().toByteArray();
            return ByteBuffer.allocate(4 + unscaled.length).putInt(d.scale()).put(unscaled).array();
        } catch (NumberFormatException e) {
            return null;
        }
    }

    // ---- one table -------------------------------------------------------------------------------

    /** One table's partition key: column names and CQL types, in partition-key order. */
    record Spec(List<String> columns, List<String> types) {

        /** The spec bound to one key schema; {@code null} parts make every token null. */
        Binding bind(Schema keySchema) {
            List<Field> fields = new ArrayList<>(columns.size());
            List<Serializer> serializers = new ArrayList<>(columns.size());
            for (int i = 0; i < columns.size(); i++) {
                if (columns.size() > 1 && "blob".equals(types.get(i))) {
                    // the agent sends a blob component of a composite partition key as the
                    // whole composite buffer (its ByteBuffer's backing array), not the blob
                    return Binding.NONE;
                }
                Field f = keySchema.field(columns.get(i));
                Serializer s = f == null ? null : serializer(types.get(i), f.schema());
                if (s == null) {
                    return Binding.NONE;
                }
                fields.add(f);
                serializers.add(s);
            }
            return new Binding(fields, serializers);
        }
    }

    /** A spec bound to a key schema: computes the token of a key struct. */
    static final class Binding {
        static final Binding NONE = new Binding(List.of(), List.of());

        private final List<Field> fields;
        private final List<Serializer> serializers;

        private Binding(List<Field> fields, List<Serializer> serializers) {
            this.fields = fields;
            this.serializers = serializers;
        }

        /** The key's token, {@code null} when a key value cannot be serialised faithfully. */
        Long token(Struct key) {
            int n = fields.size();
            if (n == 0) {
                return null;
            }
            if (n == 1) {
                byte[] b = bytes(key, 0);
                return b == null ? null : PartitionToken.token(b);
            }
            List<byte[]> parts = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                byte[] b = bytes(key, i);
                if (b == null) {
                    return null;
                }
                parts.add(b);
            }
            byte[] routing = routingKey(parts);
            return routing == null ? null : PartitionToken.token(routing);
        }

        private byte[] bytes(Struct key, int i) {
            Object v = key.get(fields.get(i));
            return v == null ? null : serializers.get(i).bytes(v);
        }
    }

    // ---- configuration ---------------------------------------------------------------------------

    /**
     * The specs of the connector config ({@code token.tables} and {@code token.table.<ks>.<table>}),
     * by {@code <keyspace>.<table>}. A spec is a comma-separated list of {@code column:type} in
     * partition-key order, column and type each percent-encoded (UTF-8), as cdcctl renders it.
     */
    static Map<String, Spec> parse(Map<String, ?> props) {
        Object listed = props.get(TABLES_CONFIG);
        if (listed == null || listed.toString().isBlank()) {
            return Map.of();
        }
        Map<String, Spec> out = new HashMap<>();
        for (String table : listed.toString().split(",", -1)) {
            String[] parts = table.split("\\.", -1);
            if (parts.length != 2 || !NAME.matcher(parts[0]).matches() || !NAME.matcher(parts[1]).matches()) {
                throw new ConfigException(TABLES_CONFIG, listed, "each entry must be <keyspace>.<table>, got '" + table + "'");
            }
            String key = TABLE_PREFIX + table;
            Object value = props.get(key);
            if (value == null || value.toString().isBlank()) {
                throw new ConfigException(key, value, "a table listed in " + TABLES_CONFIG + " needs its partition key");
            }
            List<String> columns = new ArrayList<>();
            List<String> types = new ArrayList<>();
            for (String column : value.toString().split(",", -1)) {
                int colon = column.indexOf(':');
                if (colon <= 0 || colon == column.length() - 1) {
                    throw new ConfigException(key, value, "each entry must be <column>:<cql type> (percent-encoded)");
                }
                columns.add(decode(key, column.substring(0, colon)));
                types.add(decode(key, column.substring(colon + 1)));
            }
            out.put(table, new Spec(Collections.unmodifiableList(columns), Collections.unmodifiableList(types)));
        }
        return Collections.unmodifiableMap(out);
    }

    /** Percent-decoding of UTF-8 (Python's {@code urllib.parse.quote(s, safe="")}, as lww.table.*.columns). */
    static String decode(String key, String text) {
        try {
            // '+' never occurs in the encoded form (quote() writes %2B), so URLDecoder's
            // '+'-as-space rule never applies
            return URLDecoder.decode(text, StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(key, text, "bad percent encoding: " + e.getMessage());
        }
    }

    /** {@code <keyspace>.<table>} of a topic {@code <prefix>.<keyspace>.<table>}, or null. */
    static String tableOfTopic(String topic) {
        int last = topic.lastIndexOf('.');
        if (last <= 0) {
            return null;
        }
        int before = topic.lastIndexOf('.', last - 1);
        return topic.substring(before + 1);
    }
}
