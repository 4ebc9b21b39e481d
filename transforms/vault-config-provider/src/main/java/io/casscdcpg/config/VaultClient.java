package io.casscdcpg.config;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManagerFactory;

import org.apache.kafka.common.config.ConfigException;

/**
 * HTTP to Vault/OpenBao with the JDK's client: TLS trust from {@code ca.file} (host name
 * verification stays on), the token from the configured source, AppRole login with a cached client
 * token, and every transport or HTTP failure turned into a {@link ConfigException} whose message
 * says what to do. No message ever contains a token, a secret id, a role id or a secret value.
 */
final class VaultClient {

    /**
     * An answer: the HTTP status, the body parsed as JSON (null when it is not JSON) and, for a
     * status other than 200, the body as text for {@link #vaultErrors}.
     */
    record Answer(int status, Object json, String errorBody) {
        @Override
        public String toString() {
            return "Answer{status=" + status + "}"; // the body may hold secrets
        }
    }

    private final VaultSettings settings;
    private final HttpClient http;

    // AppRole only: the client token from the last login and when to log in again.
    private String approleToken;
    private long approleRenewAtNanos;

    VaultClient(VaultSettings settings) {
        this.settings = settings;
        HttpClient.Builder builder = HttpClient.newBuilder()
                .connectTimeout(Duration.ofMillis(settings.timeoutMs))
                .followRedirects(HttpClient.Redirect.NEVER) // never send the token elsewhere
                .version(HttpClient.Version.HTTP_1_1);
        if (settings.caFile != null) {
            builder.sslContext(sslContext(settings.caFile));
        }
        this.http = builder.build();
    }

    /**
     * GET {@code apiPath} (e.g. {@code /v1/secret/data/cdc/postgres}) with a valid token. For AppRole
     * a 403 with a cached token logs in again once and retries, since the cached token may have been
     * revoked or may have expired early.
     *
     * @param what for messages, e.g. "reading secret/cdc/postgres"
     */
    Answer get(String apiPath, String what) {
        boolean fresh;
        String token;
        synchronized (this) {
            fresh = settings.auth == VaultSettings.Auth.APPROLE && needsLogin();
            token = token(false, what);
        }
        Answer answer = send(request(apiPath, token).GET().build(), what);
        if (answer.status == 403 && settings.auth == VaultSettings.Auth.APPROLE && !fresh) {
            synchronized (this) {
                token = token(true, what);
            }
            answer = send(request(apiPath, token).GET().build(), what);
        }
        return answer;
    }

    /** The current token; for AppRole logs in first if there is none, it expires, or {@code relogin}. */
    private String token(boolean relogin, String what) {
        switch (settings.auth) {
            case TOKEN:
            case ENV_TOKEN:
                return settings.token;
            case TOKEN_FILE:
                return readSecretFile(settings.tokenFile, VaultSettings.TOKEN_FILE, what,
                        "write the Vault token into it (the file is read at every lookup)");
            case APPROLE:
            default:
                if (relogin || needsLogin()) {
                    login(what);
                }
                return approleToken;
        }
    }

    private boolean needsLogin() {
        return approleToken == null || System.nanoTime() - approleRenewAtNanos >= 0;
    }

    /** POST auth/&lt;mount&gt;/login; caches the client token until 90% of its lease has passed. */
    private void login(String forWhat) {
        String secretId = settings.secretId != null ? settings.secretId
                : readSecretFile(settings.secretIdFile, VaultSettings.APPROLE_SECRET_ID_FILE, forWhat,
                        "write the AppRole secret id into it (the file is read at every login)");
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("role_id", settings.roleId);
        body.put("secret_id", secretId);
        String loginPath = "/v1/auth/" + encodePath(settings.approleMount) + "/login";
        String what = "logging in with AppRole at auth/" + settings.approleMount + " before "
                + forWhat;
        HttpRequest request = request(loginPath, null)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(Json.text(body), StandardCharsets.UTF_8))
                .build();
        long started = System.nanoTime();
        Answer answer = send(request, what);
        if (answer.status != 200) {
            throw failure("Vault at " + settings.address + " refused the AppRole login at auth/"
                    + settings.approleMount + " (HTTP " + answer.status + vaultErrors(answer)
                    + ") before " + forWhat
                    + "; check " + VaultSettings.APPROLE_ROLE_ID + ", " + VaultSettings.APPROLE_SECRET_ID
                    + "/" + VaultSettings.APPROLE_SECRET_ID_FILE + " (is the secret id expired or used "
                    + "up?) and " + VaultSettings.APPROLE_MOUNT + " (is AppRole enabled at auth/"
                    + settings.approleMount + "?)", null, secretId);
        }
        Object clientToken = Json.at(answer.json, "auth", "client_token");
        if (!(clientToken instanceof String) || ((String) clientToken).isEmpty()) {
            throw failure("Vault at " + settings.address + " answered the AppRole login at auth/"
                    + settings.approleMount + " before " + forWhat + " without auth.client_token; is auth/"
                    + settings.approleMount + " an AppRole mount?", null, secretId);
        }
        long leaseSeconds = 0;
        Object lease = Json.at(answer.json, "auth", "lease_duration");
        if (lease instanceof Json.Num) {
            try {
                leaseSeconds = ((Json.Num) lease).longValue();
            } catch (ArithmeticException e) {
                leaseSeconds = 0;
            }
        }
        approleToken = (String) clientToken;
        // A lease of 0 means a token that does not expire; re-login then happens only on a 403.
        long renewAfterNanos = leaseSeconds > 0
                ? Duration.ofSeconds(leaseSeconds).toNanos() / 10 * 9
                : Duration.ofDays(365 * 100).toNanos();
        approleRenewAtNanos = started + renewAfterNanos;
    }

    private HttpRequest.Builder request(String apiPath, String token) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(settings.address + apiPath))
                .timeout(Duration.ofMillis(settings.timeoutMs))
                .header("Accept", "application/json");
        if (token != null) {
            b.header("X-Vault-Token", token);
        }
        if (settings.namespace != null) {
            b.header("X-Vault-Namespace", settings.namespace);
        }
        return b;
    }

    private Answer send(HttpRequest request, String what) {
        HttpResponse<String> response;
        try {
            response = http.send(request, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        } catch (HttpTimeoutException e) {
            throw failure("Vault at " + settings.address + " did not answer within "
                    + VaultSettings.TIMEOUT_MS + "=" + settings.timeoutMs + " while " + what + " ("
                    + describe(e) + "); check that the server is up and reachable from this worker, "
                    + "or raise " + VaultSettings.TIMEOUT_MS, e);
        } catch (IOException e) {
            if (causedBy(e, SSLException.class)) {
                throw failure("TLS connection to Vault at " + settings.address + " failed while " + what
                        + " (" + describe(e) + "); "
                        + (settings.caFile == null
                            ? "if Vault's certificate is signed by a private CA, set " + VaultSettings.CA_FILE
                              + " to that CA's PEM file; "
                            : "check that " + VaultSettings.CA_FILE + " " + settings.caFile
                              + " holds the CA that signed Vault's certificate; ")
                        + "check that the host in address is one the certificate names and that the "
                        + "server speaks https at all", e);
            }
            throw failure("Vault at " + settings.address + " is unreachable while " + what + " ("
                    + describe(e) + "); check address and that the server is running and reachable "
                    + "from this worker", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw failure("interrupted while " + what + " at Vault " + settings.address, e);
        }
        Object json;
        try {
            json = Json.parse(response.body());
        } catch (IllegalArgumentException e) {
            json = null;
        }
        // The body of a successful read holds secrets: it is never kept for messages.
        String errorBody = response.statusCode() == 200 ? null : response.body();
        return new Answer(response.statusCode(), json, errorBody);
    }

    /**
     * What Vault said about a failure, e.g. {@code ": permission denied"}, or "": its {@code errors}
     * strings, else a non-JSON body (e.g. "Client sent an HTTP request to an HTTPS server."); never
     * anything of a 200 answer.
     */
    static String vaultErrors(Answer answer) {
        if (answer.errorBody == null) {
            return "";
        }
        String text;
        Object errors = Json.at(answer.json, "errors");
        if (errors instanceof List) {
            List<String> texts = new ArrayList<>();
            for (Object e : (List<?>) errors) {
                texts.add(e instanceof String ? (String) e : Json.text(e));
            }
            text = String.join("; ", texts);
        } else if (answer.json == null) {
            text = answer.errorBody;
        } else {
            text = "";
        }
        text = text.replaceAll("\\p{Cntrl}+", " ").strip();
        while (text.endsWith(".")) {
            text = text.substring(0, text.length() - 1);
        }
        if (text.length() > 300) {
            text = text.substring(0, 300) + "...";
        }
        return text.isEmpty() ? "" : ": " + text;
    }

    /**
     * A ConfigException with {@code message}, {@code cause} attached (JDK transport exceptions only:
     * they carry no request headers). Known credentials are masked in the message as a last line of
     * defence.
     */
    ConfigException failure(String message, Throwable cause, String... moreSecrets) {
        String safe = redact(message, moreSecrets);
        ConfigException e = new ConfigException(safe);
        if (cause != null) {
            e.initCause(cause);
        }
        return e;
    }

    private String redact(String message, String... moreSecrets) {
        List<String> secrets = new ArrayList<>(List.of(moreSecrets));
        synchronized (this) {
            if (approleToken != null) {
                secrets.add(approleToken);
            }
        }
        if (settings.token != null) {
            secrets.add(settings.token);
        }
        if (settings.secretId != null) {
            secrets.add(settings.secretId);
        }
        if (settings.roleId != null) {
            secrets.add(settings.roleId);
        }
        String out = message;
        for (String s : secrets) {
            if (s != null && s.length() >= 8) { // shorter strings are no real credential
                out = out.replace(s, "<redacted>");
            }
        }
        return out;
    }

    /** Reads a token or secret-id file: trimmed, non-empty. Never puts its content in a message. */
    private String readSecretFile(Path file, String param, String what, String advice) {
        String content;
        try {
            content = Files.readString(file, StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw failure("Vault config provider: cannot read " + param + " " + file + " ("
                    + e.getClass().getSimpleName() + ") before " + what + " at " + settings.address
                    + "; " + advice + " and make it readable by the "
                    + "worker's user", null);
        }
        if (content.isEmpty()) {
            throw failure("Vault config provider: " + param + " " + file + " is empty (needed before "
                    + what + " at " + settings.address + "); " + advice, null);
        }
        return content;
    }

    /**
     * An SSLContext trusting exactly the certificates in the PEM (or DER) bundle {@code caFile};
     * the JDK's default host name verification still applies to every connection.
     */
    static SSLContext sslContext(Path caFile) {
        try (InputStream in = Files.newInputStream(caFile)) {
            Collection<? extends Certificate> certs =
                    CertificateFactory.getInstance("X.509").generateCertificates(in);
            if (certs.isEmpty()) {
                throw new ConfigException("Vault config provider: " + VaultSettings.CA_FILE + " "
                        + caFile + " holds no certificate; point it at the PEM file of the CA that "
                        + "signed Vault's certificate");
            }
            KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
            trust.load(null, null);
            int i = 0;
            for (Certificate cert : certs) {
                trust.setCertificateEntry("vault-ca-" + i++, cert);
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(null, tmf.getTrustManagers(), null);
            return ctx;
        } catch (IOException | GeneralSecurityException e) {
            ConfigException ce = new ConfigException("Vault config provider: cannot use "
                    + VaultSettings.CA_FILE + " " + caFile + " (" + describe(e) + "); point it at a "
                    + "readable PEM file with the CA certificate(s) that signed Vault's certificate");
            ce.initCause(e);
            throw ce;
        }
    }

    private static boolean causedBy(Throwable t, Class<? extends Throwable> type) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (type.isInstance(c)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Percent-encodes each segment of a slash-separated path (RFC 3986 unreserved characters stay),
     * so a secret name can never turn into another URL, query or fragment.
     */
    static String encodePath(String path) {
        StringBuilder out = new StringBuilder();
        for (byte b : path.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
                out.append((char) c);
            } else {
                out.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 0xf, 16)));
            }
        }
        return out.toString();
    }

    /** "ConnectException: Connection refused"-style text from an exception chain. */
    static String describe(Throwable t) {
        StringBuilder out = new StringBuilder(t.getClass().getSimpleName());
        StringBuilder said = new StringBuilder();
        List<String> silent = new ArrayList<>();
        int depth = 0;
        for (Throwable c = t; c != null && depth < 8; c = c.getCause(), depth++) {
            String m = c.getMessage();
            boolean wrapsCause = c.getCause() != null && c.getCause().toString().equals(m);
            if (m != null && !m.isBlank() && !wrapsCause && said.indexOf(m) < 0) {
                out.append(": ").append(m);
                said.append(m).append('\n');
            } else if ((m == null || m.isBlank()) && c != t && !silent.contains(c.getClass().getSimpleName())
                    && !c.getClass().equals(t.getClass())) {
                silent.add(c.getClass().getSimpleName());
            }
        }
        if (said.length() == 0 && !silent.isEmpty()) {
            out.append(" (").append(String.join(", ", silent)).append(')');
        }
        return out.toString();
    }
}
