package io.casscdcpg.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.types.Password;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class VaultSettingsTest {

    static final String TOKEN = "hvs.CAESIJ-very-secret-token";
    static final Map<String, String> NO_ENV = Map.of();

    private static Map<String, Object> params(String... kv) {
        Map<String, Object> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }

    private static ConfigException invalid(Map<String, ?> params, Map<String, String> env) {
        return assertThrows(ConfigException.class, () -> VaultSettings.parse(params, env));
    }

    @Test
    void tokenConfigWithDefaults() {
        VaultSettings s = VaultSettings.parse(params("address", "https://vault:8200/", "token", TOKEN), NO_ENV);
        assertEquals("https://vault:8200", s.address);
        assertEquals(VaultSettings.Auth.TOKEN, s.auth);
        assertEquals(TOKEN, s.token);
        assertEquals(10_000, s.timeoutMs);
        assertNull(s.ttlMs);
        assertNull(s.caFile);
        assertNull(s.namespace);
    }

    @Test
    void allOptionalParameters() {
        VaultSettings s = VaultSettings.parse(params("address", "HTTPS://vault.example:8200", "token", TOKEN,
                "ca.file", "/etc/cdc/vault-ca.pem", "ttl.ms", "3600000", "timeout.ms", "2500",
                "namespace", "team-a"), NO_ENV);
        assertEquals("https://vault.example:8200", s.address);
        assertEquals(Path.of("/etc/cdc/vault-ca.pem"), s.caFile);
        assertEquals(3_600_000L, s.ttlMs);
        assertEquals(2500, s.timeoutMs);
        assertEquals("team-a", s.namespace);
    }

    @Test
    void addressAndTokenFromTheEnvironment() {
        VaultSettings s = VaultSettings.parse(params(), Map.of("VAULT_ADDR", "http://127.0.0.1:8200",
                "VAULT_TOKEN", TOKEN));
        assertEquals("http://127.0.0.1:8200", s.address);
        assertEquals(VaultSettings.Auth.ENV_TOKEN, s.auth);
        assertEquals(TOKEN, s.token);
        assertTrue(s.authDescription().contains("VAULT_TOKEN"));
    }

    @Test
    void parametersWinOverTheEnvironment() {
        VaultSettings s = VaultSettings.parse(params("address", "https://param:8200", "token.file", "/run/t"),
                Map.of("VAULT_ADDR", "https://env:8200", "VAULT_TOKEN", TOKEN));
        assertEquals("https://param:8200", s.address);
        assertEquals(VaultSettings.Auth.TOKEN_FILE, s.auth);
        assertEquals(Path.of("/run/t"), s.tokenFile);
        assertNull(s.token, "the env token is not used when token.file is set");
    }

    @Test
    void blankValuesCountAsUnset() {
        VaultSettings s = VaultSettings.parse(params("address", " ", "token", "  "),
                Map.of("VAULT_ADDR", "https://env:8200", "VAULT_TOKEN", TOKEN));
        assertEquals("https://env:8200", s.address);
        assertEquals(VaultSettings.Auth.ENV_TOKEN, s.auth);
    }

    @Test
    void passwordTypedValuesAreRead() {
        Map<String, Object> p = params("address", "https://vault:8200");
        p.put("token", new Password(TOKEN));
        assertEquals(TOKEN, VaultSettings.parse(p, NO_ENV).token);
    }

    @Test
    void appRoleWithSecretIdOrSecretIdFile() {
        VaultSettings a = VaultSettings.parse(params("address", "https://v:8200", "approle.role.id", "role-1",
                "approle.secret.id", "sid-1"), NO_ENV);
        assertEquals(VaultSettings.Auth.APPROLE, a.auth);
        assertEquals("approle", a.approleMount);
        assertEquals("sid-1", a.secretId);

        VaultSettings b = VaultSettings.parse(params("address", "https://v:8200", "approle.role.id", "role-1",
                "approle.secret.id.file", "/run/sid", "approle.mount", "team/approle"), NO_ENV);
        assertEquals(Path.of("/run/sid"), b.secretIdFile);
        assertEquals("team/approle", b.approleMount);
        assertTrue(b.authDescription().contains("auth/team/approle"), b.authDescription());
    }

    @Test
    void missingAddressSaysHowToSetIt() {
        ConfigException e = invalid(params("token", TOKEN), NO_ENV);
        assertTrue(e.getMessage().contains("'address'") && e.getMessage().contains("VAULT_ADDR"), e.getMessage());
    }

    @Test
    void missingCredentialsListsTheWays() {
        ConfigException e = invalid(params("address", "https://v:8200"), NO_ENV);
        for (String way : new String[] {"'token'", "'token.file'", "'approle.role.id'", "VAULT_TOKEN"}) {
            assertTrue(e.getMessage().contains(way), e.getMessage());
        }
    }

    @Test
    void exactlyOneWayToAuthenticate() {
        invalid(params("address", "https://v:8200", "token", TOKEN, "token.file", "/t"), NO_ENV);
        invalid(params("address", "https://v:8200", "token", TOKEN, "approle.role.id", "r", "approle.secret.id", "s"), NO_ENV);
        invalid(params("address", "https://v:8200", "token.file", "/t", "approle.role.id", "r", "approle.secret.id", "s"), NO_ENV);
        ConfigException e = invalid(params("address", "https://v:8200", "token", TOKEN, "token.file", "/t"), NO_ENV);
        assertFalse(e.getMessage().contains(TOKEN), e.getMessage());
    }

    @Test
    void appRoleNeedsExactlyOneSecretIdSource() {
        invalid(params("address", "https://v:8200", "approle.role.id", "r"), NO_ENV);
        invalid(params("address", "https://v:8200", "approle.role.id", "r", "approle.secret.id", "s",
                "approle.secret.id.file", "/s"), NO_ENV);
        ConfigException e = invalid(params("address", "https://v:8200", "approle.secret.id", "s"), NO_ENV);
        assertTrue(e.getMessage().contains("need 'approle.role.id'"), e.getMessage());
        invalid(params("address", "https://v:8200", "token", TOKEN, "approle.mount", "approle"), NO_ENV);
    }

    @ParameterizedTest
    @ValueSource(strings = {"/approle", "approle/", "a//b", "../sys", "."})
    void appRoleMountMustBeAPlainMountPath(String mount) {
        invalid(params("address", "https://v:8200", "approle.role.id", "r", "approle.secret.id", "s",
                "approle.mount", mount), NO_ENV);
    }

    @ParameterizedTest
    @ValueSource(strings = {"vault:8200", "ftp://vault:8200", "https://", "https://vault:8200?x=1",
            "https://vault:8200#f", "http://[bad", "//vault:8200"})
    void badAddressesAreRejected(String address) {
        invalid(params("address", address, "token", TOKEN), NO_ENV);
    }

    @Test
    void userInfoInTheAddressIsRejectedWithoutBeingEchoed() {
        ConfigException e = invalid(params("address", "https://admin:pa55word@vault:8200", "token", TOKEN), NO_ENV);
        assertFalse(e.getMessage().contains("pa55word"), e.getMessage());
    }

    @Test
    void caFileNeedsHttps() {
        ConfigException e = invalid(params("address", "http://vault:8200", "token", TOKEN, "ca.file", "/ca.pem"), NO_ENV);
        assertTrue(e.getMessage().contains("https"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "-5", "abc", "1.5", "99999999999999999999"})
    void durationsMustBePositiveMilliseconds(String bad) {
        invalid(params("address", "https://v:8200", "token", TOKEN, "ttl.ms", bad), NO_ENV);
        invalid(params("address", "https://v:8200", "token", TOKEN, "timeout.ms", bad), NO_ENV);
    }

    @Test
    void timeoutMustFitAnInt() {
        invalid(params("address", "https://v:8200", "token", TOKEN, "timeout.ms", "3000000000"), NO_ENV);
    }

    @Test
    void unknownParametersAreRejectedWithTheKnownOnes() {
        ConfigException e = invalid(params("address", "https://v:8200", "token", TOKEN, "tokenfile", "/t"), NO_ENV);
        assertTrue(e.getMessage().contains("[tokenfile]") && e.getMessage().contains("token.file"), e.getMessage());
    }

    @Test
    void controlCharactersInHeaderValuesAreRejectedWithoutEcho() {
        ConfigException e = invalid(params("address", "https://v:8200", "token", "abc\r\nX-Evil: 1" + TOKEN), NO_ENV);
        assertFalse(e.getMessage().contains(TOKEN), e.getMessage());
        invalid(params("address", "https://v:8200", "token", TOKEN, "namespace", "a\nb"), NO_ENV);
    }

    @Test
    void toStringShowsNoCredential() {
        String secretId = "5e3c1f2a-secret-id"; // pragma: allowlist secret (a test fixture)
        String roleId = "9a8b7c6d-role-id";
        for (VaultSettings s : new VaultSettings[] {
            VaultSettings.parse(params("address", "https://v:8200", "token", TOKEN), NO_ENV),
            VaultSettings.parse(params("address", "https://v:8200"), Map.of("VAULT_TOKEN", TOKEN)),
            VaultSettings.parse(params("address", "https://v:8200", "approle.role.id", roleId,
                    "approle.secret.id", secretId), NO_ENV),
        }) {
            String text = s.toString() + s.authDescription();
            assertFalse(text.contains(TOKEN) || text.contains(secretId) || text.contains(roleId), text);
            assertTrue(text.contains("https://v:8200"), text);
        }
    }
}
