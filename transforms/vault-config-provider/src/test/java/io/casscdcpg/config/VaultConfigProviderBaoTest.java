package io.casscdcpg.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.common.config.ConfigData;
import org.apache.kafka.common.config.ConfigException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The provider against real OpenBao dev servers (one plain HTTP, one -dev-tls), started here and
 * killed afterwards. Needs the bao binary (see {@link BaoServer#binary()}); fails without it.
 */
class VaultConfigProviderBaoTest {

    /** The brief's hard value: backslash-u text, '=', ':', newline, quotes, non-ASCII. */
    static final String TRICKY = "pä$s\\u00e9:=\n\"x";

    @TempDir
    static Path tmp;

    static BaoServer plain;
    static BaoServer tls;

    private final List<VaultConfigProvider> providers = new ArrayList<>();

    @BeforeAll
    static void startServers() throws Exception {
        plain = BaoServer.start(false, tmp);
        tls = BaoServer.start(true, tmp);
        plain.write("secret", "cdc/postgres", Map.of("user", "cdc", "password", "s3cret-pg"));
        tls.write("secret", "cdc/postgres", Map.of("user", "cdc", "password", "s3cret-tls"));
    }

    @AfterAll
    static void stopServers() {
        try {
            if (plain != null) {
                plain.close();
            }
        } finally {
            if (tls != null) {
                tls.close();
            }
        }
    }

    @AfterEach
    void closeProviders() {
        providers.forEach(VaultConfigProvider::close);
    }

    private VaultConfigProvider provider(Map<String, String> params) {
        // An empty environment: a developer's own VAULT_ADDR/VAULT_TOKEN must not leak in.
        VaultConfigProvider p = new VaultConfigProvider(Map.of());
        p.configure(params);
        providers.add(p);
        return p;
    }

    private VaultConfigProvider rootProvider(BaoServer server) {
        return provider(Map.of("address", server.address, "token", server.token));
    }

    // ---------------------------------------------------------------- resolving

    @Test
    void resolvesAllKeysOfTheLatestVersion() {
        ConfigData data = rootProvider(plain).get("secret/cdc/postgres");
        assertEquals(Map.of("user", "cdc", "password", "s3cret-pg"), data.data());
        assertNull(data.ttl(), "no ttl.ms and a KV v2 lease_duration of 0 mean no ttl");
    }

    @Test
    void resolvesOnlyTheRequestedKeys() {
        ConfigData data = rootProvider(plain).get("secret/cdc/postgres", Set.of("password"));
        assertEquals(Map.of("password", "s3cret-pg"), data.data());
    }

    @Test
    void valuesComeBackExactly() throws Exception {
        Map<String, Object> written = new LinkedHashMap<>();
        written.put("tricky", TRICKY);
        written.put("emoji", "key \uD83D\uDE00 and 𝄞");
        written.put("html", "<a href=\"x\">&amp;</a> \u2028 \u2029"); // Go escapes these as \u003c...
        written.put("controls", "tab\there\r\n\u0001\u001f end\\");
        written.put("spaces", "  leading and trailing  ");
        written.put("placeholder", "${vault:secret/x:y}");
        written.put("empty", "");
        written.put("properties", "a=b\\\nc: d # not a comment");
        plain.write("secret", "cdc/exact", written);

        ConfigData data = rootProvider(plain).get("secret/cdc/exact");
        assertEquals(written, data.data());
        assertEquals(TRICKY, rootProvider(plain).get("secret/cdc/exact", Set.of("tricky")).data().get("tricky"));
    }

    @Test
    void nonStringValuesComeBackAsTheirJsonText() throws Exception {
        Map<String, Object> written = new LinkedHashMap<>();
        written.put("port", Json.parse("5432"));
        written.put("ratio", Json.parse("2.5e3"));
        written.put("enabled", Boolean.TRUE);
        written.put("nothing", Json.NULL);
        written.put("nested", Json.parse("{\"a\":[1,\"x\\ny\",false],\"b\":{}}"));
        plain.write("secret", "cdc/typed", written);

        Map<String, String> data = rootProvider(plain).get("secret/cdc/typed").data();
        assertEquals("5432", data.get("port"));
        // Vault keeps KV data as Go values: numbers are float64 and come back re-rendered (so store
        // numbers that matter, and anything beyond 2^53, as strings). We return Vault's text as is.
        assertEquals("2500", data.get("ratio"));
        assertEquals("true", data.get("enabled"));
        assertEquals("null", data.get("nothing"));
        assertEquals("{\"a\":[1,\"x\\ny\",false],\"b\":{}}", data.get("nested"));
    }

    @Test
    void secretRotationIsSeenOnTheNextLookup() throws Exception {
        VaultConfigProvider p = rootProvider(plain);
        plain.write("secret", "cdc/rotating", Map.of("password", "version-1"));
        assertEquals("version-1", p.get("secret/cdc/rotating", Set.of("password")).data().get("password"));
        plain.write("secret", "cdc/rotating", Map.of("password", "version-2"));
        assertEquals("version-2", p.get("secret/cdc/rotating", Set.of("password")).data().get("password"));
        assertEquals(Map.of("password", "version-2"), p.get("secret/cdc/rotating").data());
    }

    @Test
    void ttlMsIsReturnedAsTheConfigDataTtl() {
        VaultConfigProvider p = provider(Map.of("address", plain.address, "token", plain.token,
                "ttl.ms", "60000"));
        assertEquals(60000L, p.get("secret/cdc/postgres").ttl());
        assertEquals(60000L, p.get("secret/cdc/postgres", Set.of("user")).ttl());
    }

    @Test
    void sendsTheNamespaceHeader() throws Exception {
        String ns = "team" + BaoServer.randomHex(3);
        plain.api("POST", "/v1/sys/namespaces/" + ns, Map.of());
        Map<String, String> inNs = Map.of("X-Vault-Namespace", ns);
        plain.api("POST", "/v1/sys/mounts/kv", Map.of("type", "kv", "options", Map.of("version", "2")), inNs);
        plain.api("POST", "/v1/kv/data/app", Map.of("data", Map.of("k", "in-namespace")), inNs);

        VaultConfigProvider p = provider(Map.of("address", plain.address, "token", plain.token,
                "namespace", ns));
        assertEquals(Map.of("k", "in-namespace"), p.get("kv/app").data());
        // Without the namespace the same path does not exist at the root.
        ConfigException e = assertThrows(ConfigException.class, () -> rootProvider(plain).get("kv/app"));
        assertNoCredentials(e, plain.token);
    }

    // ---------------------------------------------------------------- failures

    @Test
    void missingPathNamesAddressPathAndWhatToDo() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> rootProvider(plain).get("secret/cdc/nope", Set.of("password")));
        assertContainsAll(e.getMessage(), plain.address, "secret/cdc/nope", "password", "404",
                "bao kv put -mount=secret cdc/nope");
        assertNoCredentials(e, plain.token);
    }

    @Test
    void missingKeyNamesTheKeyAndTheKeysThatExistButNoValue() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> rootProvider(plain).get("secret/cdc/postgres", Set.of("password", "pasword")));
        assertContainsAll(e.getMessage(), plain.address, "secret/cdc/postgres", "'pasword'",
                "its keys: password, user", "bao kv patch");
        assertNoCredentials(e, plain.token, "s3cret-pg");
    }

    @Test
    void wrongTokenIsRefusedWithoutShowingIt() {
        String wrong = "hvs.wrong-" + BaoServer.randomHex(12);
        VaultConfigProvider p = provider(Map.of("address", plain.address, "token", wrong));
        ConfigException e = assertThrows(ConfigException.class,
                () -> p.get("secret/cdc/postgres", Set.of("password")));
        assertContainsAll(e.getMessage(), plain.address, "secret/cdc/postgres", "password", "403",
                "param 'token'", "policy");
        assertNoCredentials(e, wrong, plain.token, "s3cret-pg");
        assertFalse(p.toString().contains(wrong), p.toString());
    }

    @Test
    void stoppedServerIsReportedUnreachable() throws Exception {
        BaoServer doomed = BaoServer.start(false, tmp);
        try {
            doomed.write("secret", "cdc/postgres", Map.of("password", "before-stop"));
            VaultConfigProvider p = provider(Map.of("address", doomed.address, "token", doomed.token,
                    "timeout.ms", "3000"));
            assertEquals("before-stop", p.get("secret/cdc/postgres", Set.of("password")).data().get("password"));

            doomed.close();
            assertFalse(doomed.isAlive());
            ConfigException e = assertThrows(ConfigException.class,
                    () -> p.get("secret/cdc/postgres", Set.of("password")));
            assertContainsAll(e.getMessage(), doomed.address, "unreachable", "secret/cdc/postgres",
                    "password", "server is running");
            assertNoCredentials(e, doomed.token, "before-stop");
        } finally {
            doomed.close();
        }
    }

    // ---------------------------------------------------------------- TLS

    @Test
    void httpsWithCaFileResolves() {
        VaultConfigProvider p = provider(Map.of("address", tls.address, "token", tls.token,
                "ca.file", tls.caFile.toString()));
        assertTrue(tls.address.startsWith("https://"), tls.address);
        assertEquals(Map.of("user", "cdc", "password", "s3cret-tls"), p.get("secret/cdc/postgres").data());
    }

    @Test
    void httpsWithoutCaFileFailsWithATlsHint() {
        VaultConfigProvider p = provider(Map.of("address", tls.address, "token", tls.token));
        ConfigException e = assertThrows(ConfigException.class,
                () -> p.get("secret/cdc/postgres", Set.of("password")));
        assertContainsAll(e.getMessage(), "TLS", tls.address, "secret/cdc/postgres", "ca.file");
        assertNoCredentials(e, tls.token, "s3cret-tls");
    }

    @Test
    void httpsWithTheWrongCaFails() throws Exception {
        // A real CA, but not the one that signed this server's certificate.
        BaoServer other = BaoServer.start(true, tmp);
        try {
            VaultConfigProvider p = provider(Map.of("address", tls.address, "token", tls.token,
                    "ca.file", other.caFile.toString()));
            ConfigException e = assertThrows(ConfigException.class, () -> p.get("secret/cdc/postgres"));
            assertContainsAll(e.getMessage(), "TLS", tls.address, other.caFile.toString());
            assertNoCredentials(e, tls.token, other.token, "s3cret-tls");
        } finally {
            other.close();
        }
    }

    // ---------------------------------------------------------------- token.file

    @Test
    void tokenFileIsReadAtEveryLookup() throws Exception {
        Path file = tmp.resolve("token-" + BaoServer.randomHex(4));
        Files.writeString(file, plain.token + "\n", StandardCharsets.UTF_8);
        VaultConfigProvider p = provider(Map.of("address", plain.address, "token.file", file.toString()));
        assertEquals("s3cret-pg", p.get("secret/cdc/postgres", Set.of("password")).data().get("password"));

        String revoked = "hvs.rotated-away-" + BaoServer.randomHex(8);
        Files.writeString(file, revoked, StandardCharsets.UTF_8);
        ConfigException e = assertThrows(ConfigException.class, () -> p.get("secret/cdc/postgres"));
        assertContainsAll(e.getMessage(), "403", "token.file " + file, plain.address);
        assertNoCredentials(e, revoked, plain.token, "s3cret-pg");

        Files.writeString(file, plain.token, StandardCharsets.UTF_8);
        assertEquals("cdc", p.get("secret/cdc/postgres", Set.of("user")).data().get("user"));

        Files.delete(file);
        ConfigException gone = assertThrows(ConfigException.class, () -> p.get("secret/cdc/postgres"));
        assertContainsAll(gone.getMessage(), "cannot read token.file " + file);
        assertNoCredentials(gone, plain.token);
    }

    // ---------------------------------------------------------------- AppRole

    /** Enables AppRole at {@code mount} with role {@code cdc} reading secret/data/cdc/*; returns role id and secret id. */
    private static String[] appRole(String mount) throws Exception {
        plain.api("POST", "/v1/sys/auth/" + mount, Map.of("type", "approle"));
        plain.api("PUT", "/v1/sys/policies/acl/cdc-read", Map.of("policy",
                "path \"secret/data/cdc/*\" { capabilities = [\"read\"] }"));
        plain.api("POST", "/v1/auth/" + mount + "/role/cdc", Map.of(
                "token_policies", List.of("cdc-read"), "token_ttl", "1h", "token_max_ttl", "4h"));
        Object roleId = Json.at(plain.api("GET", "/v1/auth/" + mount + "/role/cdc/role-id", null), "data", "role_id");
        Object secretId = Json.at(plain.api("POST", "/v1/auth/" + mount + "/role/cdc/secret-id", Map.of()), "data", "secret_id");
        return new String[] {(String) roleId, (String) secretId};
    }

    @Test
    void appRoleLogsInAndLogsInAgainWhenItsTokenIsRevoked() throws Exception {
        String[] ids = appRole("approle");
        VaultConfigProvider p = provider(Map.of("address", plain.address,
                "approle.role.id", ids[0], "approle.secret.id", ids[1]));
        assertEquals("s3cret-pg", p.get("secret/cdc/postgres", Set.of("password")).data().get("password"));

        // Revoke every token AppRole has issued: the cached one answers 403, the provider logs in again.
        plain.api("PUT", "/v1/sys/leases/revoke-prefix/auth/approle", null);
        assertEquals("cdc", p.get("secret/cdc/postgres", Set.of("user")).data().get("user"));

        // The policy is enforced: a path outside secret/data/cdc/* is refused, naming the AppRole.
        plain.write("secret", "other/x", Map.of("k", "v-other"));
        ConfigException e = assertThrows(ConfigException.class, () -> p.get("secret/other/x"));
        assertContainsAll(e.getMessage(), "403", "AppRole login at auth/approle", "secret/other/x",
                "secret/data/other/x", "policy");
        assertNoCredentials(e, ids[0], ids[1], plain.token, "v-other");
    }

    @Test
    void appRoleWithSecretIdFileAndCustomMount() throws Exception {
        String[] ids = appRole("approle-cdc");
        Path secretIdFile = tmp.resolve("secret-id-" + BaoServer.randomHex(4));
        Files.writeString(secretIdFile, ids[1] + "\n", StandardCharsets.UTF_8);
        VaultConfigProvider p = provider(Map.of("address", plain.address, "approle.mount", "approle-cdc",
                "approle.role.id", ids[0], "approle.secret.id.file", secretIdFile.toString()));
        assertEquals(Map.of("user", "cdc", "password", "s3cret-pg"), p.get("secret/cdc/postgres").data());
    }

    @Test
    void appRoleWithAWrongSecretIdFailsWithoutShowingIt() throws Exception {
        String[] ids = appRole("approle-bad");
        String wrongSecretId = "00000000-1111-2222-3333-" + BaoServer.randomHex(6);
        VaultConfigProvider p = provider(Map.of("address", plain.address, "approle.mount", "approle-bad",
                "approle.role.id", ids[0], "approle.secret.id", wrongSecretId));
        ConfigException e = assertThrows(ConfigException.class,
                () -> p.get("secret/cdc/postgres", Set.of("password")));
        assertContainsAll(e.getMessage(), plain.address, "AppRole login at auth/approle-bad", "HTTP 400",
                "approle.secret.id", "secret/cdc/postgres", "password");
        assertNoCredentials(e, ids[0], ids[1], wrongSecretId, plain.token);
    }

    // ---------------------------------------------------------------- helpers

    static void assertContainsAll(String message, String... parts) {
        for (String part : parts) {
            assertTrue(message.contains(part), "expected '" + part + "' in: " + message);
        }
    }

    /**
     * None of {@code secrets} appears in the exception, its causes or suppressed exceptions:
     * message, toString or printed stack trace.
     */
    static void assertNoCredentials(Throwable thrown, String... secrets) {
        StringWriter trace = new StringWriter();
        thrown.printStackTrace(new PrintWriter(trace));
        Map<Throwable, Boolean> seen = new IdentityHashMap<>();
        StringBuilder all = new StringBuilder(trace.toString());
        collect(thrown, seen, all);
        for (String secret : secrets) {
            assertFalse(all.toString().contains(secret),
                    "a credential or secret value leaked into the exception: " + thrown);
        }
    }

    private static void collect(Throwable t, Map<Throwable, Boolean> seen, StringBuilder out) {
        if (t == null || seen.put(t, Boolean.TRUE) != null) {
            return;
        }
        out.append('\n').append(t.getMessage()).append('\n').append(t).append('\n')
                .append(t.getLocalizedMessage());
        collect(t.getCause(), seen, out);
        for (Throwable s : t.getSuppressed()) {
            collect(s, seen, out);
        }
    }
}
