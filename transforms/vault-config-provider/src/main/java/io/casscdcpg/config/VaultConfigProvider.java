package io.casscdcpg.config;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.common.config.ConfigData;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.provider.ConfigProvider;

/**
 * Kafka Connect {@link ConfigProvider} resolving {@code ${vault:<mount>/<secret>:<key>}} from a
 * Vault or OpenBao KV version 2 engine: {@code secret/cdc/postgres} is mount {@code secret}, secret
 * {@code cdc/postgres}, read as {@code GET <address>/v1/secret/data/cdc/postgres} (latest version).
 *
 * <p>Worker properties (docs/vault-provider.md):
 * <pre>
 * config.providers=vault
 * config.providers.vault.class=io.casscdcpg.config.VaultConfigProvider
 * config.providers.vault.param.address=https://vault:8200
 * config.providers.vault.param.token.file=/run/secrets/vault-token
 * config.providers.vault.param.ca.file=/etc/cdc/vault-ca.pem
 * </pre>
 *
 * <p>{@link #configure} only checks the parameters (no network), because the worker instantiates
 * providers more than once at start-up. Every failure of a lookup is a {@link ConfigException}
 * naming the address, the path, the key and what to do; none contains a token or a secret value.
 */
public class VaultConfigProvider implements ConfigProvider {

    private final Map<String, String> env;
    private volatile VaultSettings settings;
    private volatile VaultClient client;

    /** The constructor Kafka Connect uses; VAULT_ADDR and VAULT_TOKEN come from the environment. */
    public VaultConfigProvider() {
        this(System.getenv());
    }

    /** For tests: {@code env} stands for the process environment. */
    VaultConfigProvider(Map<String, String> env) {
        this.env = Map.copyOf(env);
    }

    @Override
    public void configure(Map<String, ?> configs) {
        VaultSettings parsed = VaultSettings.parse(configs, env);
        VaultClient created = new VaultClient(parsed);
        this.settings = parsed;
        this.client = created;
    }

    /** All keys of the latest version of the secret at {@code path}. */
    @Override
    public ConfigData get(String path) {
        return read(path, null);
    }

    /** Only {@code keys} of the latest version of the secret at {@code path}; each must exist. */
    @Override
    public ConfigData get(String path, Set<String> keys) {
        if (keys != null && keys.isEmpty()) {
            return new ConfigData(Collections.emptyMap());
        }
        return read(path, keys);
    }

    @Override
    public void close() {
        client = null;
    }

    @Override
    public String toString() {
        VaultSettings s = settings;
        return "VaultConfigProvider{" + (s == null ? "not configured" : s.toString()) + "}";
    }

    private ConfigData read(String path, Set<String> keys) {
        VaultClient c = client;
        VaultSettings s = settings;
        if (c == null || s == null) {
            throw new ConfigException("Vault config provider is not configured or already closed; "
                    + "cannot resolve path " + path);
        }
        SecretPath secret = SecretPath.parse(path);
        String what = "reading " + secret + (keys == null ? "" : " for key(s) " + new TreeSet<>(keys));
        VaultClient.Answer answer = c.get(secret.apiPath(), what);
        switch (answer.status()) {
            case 200:
                return toConfigData(answer.json(), secret, keys, s);
            case 404:
                String keyHint = keys == null || keys.size() != 1 ? "<key>" : keys.iterator().next();
                throw c.failure("Vault at " + s.address + " has no secret '" + secret + "' ("
                        + (keys == null ? "" : "needed for key(s) " + new TreeSet<>(keys) + "; ")
                        + "GET " + secret.apiPath() + " answered 404" + VaultClient.vaultErrors(answer)
                        + "): write it (e.g. bao kv put -mount=" + secret.mount + " " + secret.name + " "
                        + keyHint + "=<value>) or fix the path in the connector config's placeholder. "
                        + "The path's first segment is the KV v2 mount ('" + secret.mount + "'), the rest "
                        + "the secret's name ('" + secret.name + "'); a deleted latest version also "
                        + "reads as missing", null);
            case 403:
                throw c.failure("Vault at " + s.address + " refused " + what + " (HTTP 403"
                        + VaultClient.vaultErrors(answer) + ") using " + s.authDescription() + ": the "
                        + "token is invalid, expired or revoked, or its policy lacks 'read' on "
                        + secret.mount + "/data/" + secret.name + "; fix the credentials or the policy",
                        null);
            default:
                throw c.failure("Vault at " + s.address + " answered HTTP " + answer.status()
                        + " while " + what + VaultClient.vaultErrors(answer) + "; "
                        + (answer.status() == 503 ? "Vault is sealed or in standby: unseal it or "
                                                    + "point address at an active node"
                                                  : "check the server's log and the path"), null);
        }
    }

    /**
     * Maps a KV v2 read answer to ConfigData: string values as they are, other JSON values as their
     * JSON text; only {@code keys} when given (each must exist). The ttl is {@code ttl.ms} when set,
     * else the answer's {@code lease_duration} (seconds) when positive, else none.
     */
    static ConfigData toConfigData(Object answer, SecretPath secret, Set<String> keys,
                                   VaultSettings settings) {
        Object data = Json.at(answer, "data", "data");
        if (!(data instanceof Map)) {
            throw new ConfigException("Vault at " + settings.address + " answered the read of '"
                    + secret + "' without a data.data object; is '" + secret.mount + "' a KV version 2 "
                    + "mount? (KV version 1 is not supported: enable the mount with -version=2 or "
                    + "'bao kv enable-versioning " + secret.mount + "/')");
        }
        Map<?, ?> values = (Map<?, ?>) data;
        Map<String, String> out = new LinkedHashMap<>();
        if (keys == null) {
            for (Map.Entry<?, ?> e : values.entrySet()) {
                out.put(String.valueOf(e.getKey()), render(e.getValue()));
            }
        } else {
            for (String key : new TreeSet<>(keys)) {
                if (!values.containsKey(key)) {
                    throw new ConfigException("Vault secret '" + secret + "' at " + settings.address
                            + " has no key '" + key + "' (its keys: "
                            + String.join(", ", keyNames(values)) + "); add it (e.g. bao kv patch "
                            + "-mount=" + secret.mount + " " + secret.name + " " + key + "=<value>) or "
                            + "fix the key in the connector config's placeholder (..:" + secret + ":"
                            + key + "})");
                }
                out.put(key, render(values.get(key)));
            }
        }
        Long ttl = settings.ttlMs;
        if (ttl == null) {
            Object lease = Json.at(answer, "lease_duration");
            if (lease instanceof Json.Num) {
                try {
                    long seconds = ((Json.Num) lease).longValue();
                    if (seconds > 0) {
                        ttl = Math.multiplyExact(seconds, 1000L);
                    }
                } catch (ArithmeticException e) {
                    ttl = null;
                }
            }
        }
        return new ConfigData(out, ttl);
    }

    private static String render(Object value) {
        return value instanceof String ? (String) value : Json.text(value);
    }

    private static Set<String> keyNames(Map<?, ?> values) {
        Set<String> names = new TreeSet<>();
        for (Object k : values.keySet()) {
            names.add(String.valueOf(k));
        }
        return names;
    }

    /** {@code <mount>/<secret>} of a placeholder, checked so it can only address a KV v2 read. */
    static final class SecretPath {
        final String mount;
        final String name;

        private SecretPath(String mount, String name) {
            this.mount = mount;
            this.name = name;
        }

        static SecretPath parse(String path) {
            String example = "write it as <mount>/<secret>, e.g. ${vault:secret/cdc/postgres:password}"
                    + " for KV v2 mount 'secret', secret 'cdc/postgres', key 'password'";
            if (path == null || path.isBlank()) {
                throw new ConfigException("Vault config provider: the placeholder has no path; "
                        + example);
            }
            String[] segments = path.split("/", -1);
            if (segments.length < 2) {
                throw new ConfigException("Vault config provider: path '" + path + "' has no "
                        + "secret after the mount; " + example);
            }
            for (String segment : segments) {
                if (segment.isEmpty() || segment.equals(".") || segment.equals("..")) {
                    throw new ConfigException("Vault config provider: path '" + path + "' has an "
                            + "empty, '.' or '..' segment (or a leading/trailing/double slash); "
                            + example);
                }
            }
            int slash = path.indexOf('/');
            return new SecretPath(path.substring(0, slash), path.substring(slash + 1));
        }

        /** e.g. {@code /v1/secret/data/cdc/postgres}, each segment percent-encoded. */
        String apiPath() {
            return "/v1/" + VaultClient.encodePath(mount) + "/data/" + VaultClient.encodePath(name);
        }

        @Override
        public String toString() {
            return mount + "/" + name;
        }
    }
}
