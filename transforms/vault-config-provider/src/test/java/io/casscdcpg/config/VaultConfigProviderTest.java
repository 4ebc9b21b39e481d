package io.casscdcpg.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.Set;

import org.apache.kafka.common.config.ConfigData;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.provider.ConfigProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Everything of the provider that needs no server: discovery, paths, answer mapping, set-up errors. */
class VaultConfigProviderTest {

    static final String TOKEN = "hvs.unit-test-token-123456";

    @TempDir
    Path tmp;

    private static VaultSettings settings(String... extra) {
        Map<String, String> p = new java.util.HashMap<>(Map.of("address", "https://vault:8200", "token", TOKEN));
        for (int i = 0; i < extra.length; i += 2) {
            p.put(extra[i], extra[i + 1]);
        }
        return VaultSettings.parse(p, Map.of());
    }

    private static final String ANSWER = "{\"request_id\":\"r\",\"lease_id\":\"\",\"renewable\":false,"
            + "\"lease_duration\":%s,\"data\":{\"data\":{\"user\":\"cdc\",\"password\":\"s3cret\","
            + "\"port\":5432,\"tls\":true,\"none\":null,\"obj\":{\"a\":[1,\"b\"]}},"
            + "\"metadata\":{\"version\":3}},\"wrap_info\":null,\"warnings\":null,\"auth\":null}";

    private static Object answer(long leaseSeconds) {
        return Json.parse(String.format(ANSWER, leaseSeconds));
    }

    private static final VaultConfigProvider.SecretPath PG = VaultConfigProvider.SecretPath.parse("secret/cdc/postgres");

    @Test
    void isDiscoverableThroughServiceLoader() {
        List<String> found = new ArrayList<>();
        for (ConfigProvider p : ServiceLoader.load(ConfigProvider.class)) {
            found.add(p.getClass().getName());
        }
        assertTrue(found.contains(VaultConfigProvider.class.getName()), found.toString());
    }

    @Test
    void pathIsMountThenSecret() {
        assertEquals("secret", PG.mount);
        assertEquals("cdc/postgres", PG.name);
        assertEquals("/v1/secret/data/cdc/postgres", PG.apiPath());
        assertEquals("secret/cdc/postgres", PG.toString());
        VaultConfigProvider.SecretPath deep = VaultConfigProvider.SecretPath.parse("kv/a/b/c");
        assertEquals("/v1/kv/data/a/b/c", deep.apiPath());
    }

    @Test
    void pathSegmentsArePercentEncoded() {
        VaultConfigProvider.SecretPath p = VaultConfigProvider.SecretPath.parse("my kv/a b?c#d%e/é");
        assertEquals("/v1/my%20kv/data/a%20b%3Fc%23d%25e/%C3%A9", p.apiPath());
    }

    @ParameterizedTest
    @ValueSource(strings = {"", " ", "secret", "secret/", "/secret/x", "secret//x", "secret/x/",
            "secret/../sys/seal", "secret/./x", "../x"})
    void badPathsAreRejectedWithAnExample(String path) {
        ConfigException e = assertThrows(ConfigException.class, () -> VaultConfigProvider.SecretPath.parse(path));
        assertTrue(e.getMessage().contains("secret/cdc/postgres:password"), e.getMessage());
    }

    @Test
    void nullPathIsRejected() {
        assertThrows(ConfigException.class, () -> VaultConfigProvider.SecretPath.parse(null));
    }

    @Test
    void allKeysStringsAsTheyAreOthersAsJsonText() {
        ConfigData d = VaultConfigProvider.toConfigData(answer(0), PG, null, settings());
        assertEquals(Map.of("user", "cdc", "password", "s3cret", "port", "5432", "tls", "true",
                "none", "null", "obj", "{\"a\":[1,\"b\"]}"), d.data());
        assertNull(d.ttl());
    }

    @Test
    void onlyTheRequestedKeys() {
        ConfigData d = VaultConfigProvider.toConfigData(answer(0), PG, Set.of("user", "port"), settings());
        assertEquals(Map.of("user", "cdc", "port", "5432"), d.data());
    }

    @Test
    void aMissingKeyNamesPathKeyAddressAndTheExistingKeysButNoValue() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> VaultConfigProvider.toConfigData(answer(0), PG, Set.of("user", "pasword"), settings()));
        String m = e.getMessage();
        for (String part : new String[] {"'secret/cdc/postgres'", "https://vault:8200", "'pasword'",
                "its keys: none, obj, password, port, tls, user", "bao kv patch -mount=secret cdc/postgres pasword="}) {
            assertTrue(m.contains(part), "expected " + part + " in " + m);
        }
        assertFalse(m.contains("s3cret") || m.contains(TOKEN), m);
    }

    @Test
    void ttlIsTtlMsElseAPositiveLeaseElseNone() {
        assertEquals(60_000L, VaultConfigProvider.toConfigData(answer(0), PG, null, settings("ttl.ms", "60000")).ttl());
        assertEquals(60_000L, VaultConfigProvider.toConfigData(answer(30), PG, null, settings("ttl.ms", "60000")).ttl(),
                "an explicit ttl.ms wins over the lease");
        assertEquals(30_000L, VaultConfigProvider.toConfigData(answer(30), PG, null, settings()).ttl());
        assertNull(VaultConfigProvider.toConfigData(answer(0), PG, null, settings()).ttl());
    }

    @Test
    void anAnswerWithoutDataDataIsNotKvVersion2() {
        Object kv1 = Json.parse("{\"lease_duration\":2764800,\"data\":{\"password\":\"s3cret\"}}");
        ConfigException e = assertThrows(ConfigException.class,
                () -> VaultConfigProvider.toConfigData(kv1, PG, null, settings()));
        assertTrue(e.getMessage().contains("KV version 2"), e.getMessage());
        assertFalse(e.getMessage().contains("s3cret"), e.getMessage());
    }

    @Test
    void emptyKeySetNeedsNoServer() {
        VaultConfigProvider p = new VaultConfigProvider(Map.of());
        p.configure(Map.of("address", "https://127.0.0.1:1", "token", TOKEN));
        assertEquals(Map.of(), p.get("secret/cdc/postgres", Set.of()).data());
        p.close();
    }

    @Test
    void lookupsBeforeConfigureOrAfterCloseFail() {
        VaultConfigProvider p = new VaultConfigProvider(Map.of());
        assertThrows(ConfigException.class, () -> p.get("secret/cdc/postgres"));
        p.configure(Map.of("address", "https://127.0.0.1:1", "token", TOKEN));
        p.close();
        ConfigException e = assertThrows(ConfigException.class, () -> p.get("secret/cdc/postgres"));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertFalse(p.toString().contains(TOKEN), p.toString());
    }

    @Test
    void configureUsesTheEnvironment() {
        VaultConfigProvider p = new VaultConfigProvider(Map.of("VAULT_ADDR", "http://127.0.0.1:8200",
                "VAULT_TOKEN", TOKEN));
        p.configure(Map.of());
        assertTrue(p.toString().contains("http://127.0.0.1:8200") && p.toString().contains("VAULT_TOKEN"), p.toString());
        assertFalse(p.toString().contains(TOKEN), p.toString());
    }

    @Test
    void caFileThatIsNoCertificateFailsAtConfigure() throws Exception {
        Path notPem = tmp.resolve("not-a-ca.pem");
        Files.writeString(notPem, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
                StandardCharsets.US_ASCII);
        Path empty = Files.createFile(tmp.resolve("empty.pem"));
        Path missing = tmp.resolve("missing.pem");
        for (Path ca : new Path[] {notPem, empty, missing}) {
            VaultConfigProvider p = new VaultConfigProvider(Map.of());
            ConfigException e = assertThrows(ConfigException.class,
                    () -> p.configure(Map.of("address", "https://vault:8200", "token", TOKEN, "ca.file", ca.toString())));
            assertTrue(e.getMessage().contains("ca.file " + ca), e.getMessage());
            assertFalse(e.getMessage().contains(TOKEN), e.getMessage());
        }
    }

    @Test
    void unreachableAddressFailsWithTheAddressAndNoToken() throws Exception {
        int port;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            port = s.getLocalPort();
        }
        VaultConfigProvider p = new VaultConfigProvider(Map.of());
        p.configure(Map.of("address", "http://127.0.0.1:" + port, "token", TOKEN, "timeout.ms", "2000"));
        ConfigException e = assertThrows(ConfigException.class, () -> p.get("secret/cdc/postgres", Set.of("password")));
        assertTrue(e.getMessage().contains("http://127.0.0.1:" + port) && e.getMessage().contains("unreachable")
                && e.getMessage().contains("secret/cdc/postgres"), e.getMessage());
        VaultConfigProviderBaoTest.assertNoCredentials(e, TOKEN);
    }

    @Test
    void describeJoinsTheCauseChain() {
        Exception e = new java.io.IOException(null, new java.net.ConnectException("Connection refused"));
        assertEquals("IOException: Connection refused",
                VaultClient.describe(e));
    }
}
