package io.casscdcpg.config;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.types.Password;

/**
 * The provider's parameters ({@code config.providers.<alias>.param.<name>} of the worker), parsed
 * and checked once in {@link VaultConfigProvider#configure}. Does no I/O: files named here are read
 * when a secret is looked up, so a rotated token or secret-id file is picked up.
 *
 * <p>{@link #toString()} never shows a token or secret id.
 */
final class VaultSettings {

    static final String ADDRESS = "address";
    static final String TOKEN = "token";
    static final String TOKEN_FILE = "token.file";
    static final String APPROLE_ROLE_ID = "approle.role.id";
    static final String APPROLE_SECRET_ID = "approle.secret.id";
    static final String APPROLE_SECRET_ID_FILE = "approle.secret.id.file";
    static final String APPROLE_MOUNT = "approle.mount";
    static final String CA_FILE = "ca.file";
    static final String TTL_MS = "ttl.ms";
    static final String TIMEOUT_MS = "timeout.ms";
    static final String NAMESPACE = "namespace";

    static final String ENV_ADDRESS = "VAULT_ADDR";
    static final String ENV_TOKEN = "VAULT_TOKEN";

    static final int DEFAULT_TIMEOUT_MS = 10_000;
    static final String DEFAULT_APPROLE_MOUNT = "approle";

    static final Set<String> KNOWN = Set.of(ADDRESS, TOKEN, TOKEN_FILE, APPROLE_ROLE_ID,
            APPROLE_SECRET_ID, APPROLE_SECRET_ID_FILE, APPROLE_MOUNT, CA_FILE, TTL_MS, TIMEOUT_MS,
            NAMESPACE);

    /** Where the Vault token comes from. */
    enum Auth {
        /** {@code token}: a fixed token. */
        TOKEN,
        /** {@code token.file}: a file holding the token, read at every lookup. */
        TOKEN_FILE,
        /** {@code approle.*}: AppRole login, the client token cached until it expires or is refused. */
        APPROLE,
        /** The worker's environment variable VAULT_TOKEN. */
        ENV_TOKEN
    }

    /** The Vault address without a trailing slash, e.g. {@code https://vault:8200}. */
    final String address;
    final Auth auth;
    /** The fixed token for {@link Auth#TOKEN} and {@link Auth#ENV_TOKEN}, else null. */
    final String token;
    final Path tokenFile;
    final String roleId;
    final String secretId;
    final Path secretIdFile;
    final String approleMount;
    final Path caFile;
    /** ttl.ms, or null when not set. */
    final Long ttlMs;
    final int timeoutMs;
    final String namespace;

    private VaultSettings(String address, Auth auth, String token, Path tokenFile, String roleId,
                          String secretId, Path secretIdFile, String approleMount, Path caFile,
                          Long ttlMs, int timeoutMs, String namespace) {
        this.address = address;
        this.auth = auth;
        this.token = token;
        this.tokenFile = tokenFile;
        this.roleId = roleId;
        this.secretId = secretId;
        this.secretIdFile = secretIdFile;
        this.approleMount = approleMount;
        this.caFile = caFile;
        this.ttlMs = ttlMs;
        this.timeoutMs = timeoutMs;
        this.namespace = namespace;
    }

    /**
     * Parses the provider parameters; {@code env} stands for the worker's environment (VAULT_ADDR,
     * VAULT_TOKEN).
     *
     * @throws ConfigException naming the parameter and what to write instead
     */
    static VaultSettings parse(Map<String, ?> params, Map<String, String> env) {
        Set<String> unknown = new TreeSet<>(params.keySet());
        unknown.removeAll(KNOWN);
        if (!unknown.isEmpty()) {
            throw new ConfigException("Vault config provider: unknown parameter(s) " + unknown
                    + "; the known ones are " + new TreeSet<>(KNOWN)
                    + " (set as config.providers.<alias>.param.<name> in the worker properties)");
        }

        String address = text(params, ADDRESS);
        if (address == null) {
            address = blankToNull(env.get(ENV_ADDRESS));
        }
        if (address == null) {
            throw new ConfigException("Vault config provider: no Vault address; set param '"
                    + ADDRESS + "' (e.g. https://vault:8200) or the worker's environment variable "
                    + ENV_ADDRESS);
        }
        address = checkAddress(address);

        String token = text(params, TOKEN);
        Path tokenFile = path(params, TOKEN_FILE);
        String roleId = text(params, APPROLE_ROLE_ID);
        String secretId = text(params, APPROLE_SECRET_ID);
        Path secretIdFile = path(params, APPROLE_SECRET_ID_FILE);
        String approleMount = text(params, APPROLE_MOUNT);

        int methods = (token != null ? 1 : 0) + (tokenFile != null ? 1 : 0) + (roleId != null ? 1 : 0);
        if (methods > 1) {
            throw new ConfigException("Vault config provider: set exactly one way to authenticate, "
                    + "but more than one of '" + TOKEN + "', '" + TOKEN_FILE + "', '" + APPROLE_ROLE_ID
                    + "' is set; remove the others");
        }
        if (roleId == null && (secretId != null || secretIdFile != null || approleMount != null)) {
            throw new ConfigException("Vault config provider: '" + APPROLE_SECRET_ID + "', '"
                    + APPROLE_SECRET_ID_FILE + "' and '" + APPROLE_MOUNT + "' need '" + APPROLE_ROLE_ID
                    + "' (AppRole login); set the role id or remove them");
        }
        Auth auth;
        if (token != null) {
            auth = Auth.TOKEN;
        } else if (tokenFile != null) {
            auth = Auth.TOKEN_FILE;
        } else if (roleId != null) {
            auth = Auth.APPROLE;
            if ((secretId == null) == (secretIdFile == null)) {
                throw new ConfigException("Vault config provider: AppRole login needs exactly one of '"
                        + APPROLE_SECRET_ID + "' and '" + APPROLE_SECRET_ID_FILE + "'");
            }
            approleMount = approleMount == null ? DEFAULT_APPROLE_MOUNT : checkMount(approleMount);
        } else {
            token = blankToNull(env.get(ENV_TOKEN));
            if (token == null) {
                throw new ConfigException("Vault config provider: no Vault credentials; set param '"
                        + TOKEN + "', '" + TOKEN_FILE + "', or '" + APPROLE_ROLE_ID + "' with '"
                        + APPROLE_SECRET_ID + "' or '" + APPROLE_SECRET_ID_FILE
                        + "', or the worker's environment variable " + ENV_TOKEN);
            }
            auth = Auth.ENV_TOKEN;
        }
        checkHeaderSafe(TOKEN, token);

        Path caFile = path(params, CA_FILE);
        if (caFile != null && !address.startsWith("https://")) {
            throw new ConfigException("Vault config provider: '" + CA_FILE + "' is set but address "
                    + address + " is not https; use an https:// address or remove " + CA_FILE);
        }

        Long ttlMs = null;
        String ttlText = text(params, TTL_MS);
        if (ttlText != null) {
            ttlMs = positiveLong(TTL_MS, ttlText);
        }
        int timeoutMs = DEFAULT_TIMEOUT_MS;
        String timeoutText = text(params, TIMEOUT_MS);
        if (timeoutText != null) {
            long t = positiveLong(TIMEOUT_MS, timeoutText);
            if (t > Integer.MAX_VALUE) {
                throw new ConfigException("Vault config provider: '" + TIMEOUT_MS + "' is too large: "
                        + timeoutText);
            }
            timeoutMs = (int) t;
        }
        String namespace = text(params, NAMESPACE);
        checkHeaderSafe(NAMESPACE, namespace);

        return new VaultSettings(address, auth, token, tokenFile, roleId, secretId, secretIdFile,
                approleMount, caFile, ttlMs, timeoutMs, namespace);
    }

    /** Where the credentials come from, for messages: names a parameter or file, never a secret. */
    String authDescription() {
        switch (auth) {
            case TOKEN:
                return "the token in param '" + TOKEN + "'";
            case TOKEN_FILE:
                return "the token in " + TOKEN_FILE + " " + tokenFile;
            case APPROLE:
                return "the AppRole login at auth/" + approleMount + " ("
                        + (secretIdFile != null ? APPROLE_SECRET_ID_FILE + " " + secretIdFile
                                                : "param '" + APPROLE_SECRET_ID + "'") + ")";
            case ENV_TOKEN:
            default:
                return "the token in the worker's environment variable " + ENV_TOKEN;
        }
    }

    @Override
    public String toString() {
        return "VaultSettings{address=" + address + ", auth=" + authDescription()
                + (caFile != null ? ", ca.file=" + caFile : "")
                + (ttlMs != null ? ", ttl.ms=" + ttlMs : "")
                + ", timeout.ms=" + timeoutMs
                + (namespace != null ? ", namespace=" + namespace : "") + "}";
    }

    // ---------------------------------------------------------------- helpers

    private static String checkAddress(String address) {
        URI uri;
        try {
            uri = new URI(address);
        } catch (URISyntaxException e) {
            throw new ConfigException("Vault config provider: address is not a URL (" + e.getReason()
                    + "); write it like https://vault:8200");
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https")) {
            throw new ConfigException("Vault config provider: address must start with https:// or "
                    + "http://, like https://vault:8200");
        }
        if (uri.getRawUserInfo() != null) {
            // Never echo it: user info is a credential.
            throw new ConfigException("Vault config provider: address must not contain user:password@;"
                    + " authenticate with token, token.file or AppRole instead");
        }
        if (uri.getHost() == null) {
            throw new ConfigException("Vault config provider: address " + address
                    + " has no host; write it like https://vault:8200");
        }
        if (uri.getRawQuery() != null || uri.getRawFragment() != null) {
            throw new ConfigException("Vault config provider: address " + address
                    + " must not have a query or fragment; write it like https://vault:8200");
        }
        String path = uri.getRawPath() == null ? "" : uri.getRawPath();
        while (path.endsWith("/")) {
            path = path.substring(0, path.length() - 1);
        }
        return scheme + "://" + uri.getRawAuthority() + path;
    }

    /** An auth mount path such as {@code approle} or {@code team/approle}. */
    private static String checkMount(String mount) {
        for (String segment : mount.split("/", -1)) {
            if (segment.isEmpty() || segment.equals(".") || segment.equals("..")) {
                throw new ConfigException("Vault config provider: '" + APPROLE_MOUNT + "' " + mount
                        + " is not a mount path; write it like approle (without auth/ or slashes at the ends)");
            }
        }
        return mount;
    }

    private static void checkHeaderSafe(String name, String value) {
        if (value == null) {
            return;
        }
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c < 0x20 || c == 0x7f) {
                throw new ConfigException("Vault config provider: '" + name
                        + "' contains a control character (line break?); remove it");
            }
        }
    }

    private static long positiveLong(String name, String text) {
        try {
            long v = Long.parseLong(text);
            if (v > 0) {
                return v;
            }
        } catch (NumberFormatException e) {
            // fall through to the message below
        }
        throw new ConfigException("Vault config provider: '" + name + "' must be a positive number of "
                + "milliseconds, not '" + text + "'");
    }

    private static Path path(Map<String, ?> params, String name) {
        String text = text(params, name);
        return text == null ? null : Path.of(text);
    }

    /** The parameter as trimmed text, or null when absent or blank. */
    private static String text(Map<String, ?> params, String name) {
        Object value = params.get(name);
        if (value == null) {
            return null;
        }
        if (value instanceof Password) {
            return blankToNull(((Password) value).value());
        }
        if (value instanceof List) {
            throw new ConfigException("Vault config provider: '" + name + "' must be a single value");
        }
        return blankToNull(String.valueOf(value));
    }

    private static String blankToNull(String s) {
        if (s == null) {
            return null;
        }
        String t = s.strip();
        return t.isEmpty() ? null : t;
    }
}
