// A paced CQL write load for the benchmarks, cheap in CPU: the DataStax Java driver 4 the
// Debezium Cassandra agent ships, on the agent's jars. Compiled by tests/performance/javaload.py
// (decision 0155); `java -cp <driver jars> tests/performance/LoadGen.java ...` (JEP 330) runs it
// as well.
//
//   LoadGen --host H --port P --table ks.t [--threads 2] [--window 512] [--burst-s 0.1]
//           [--tick-s 0] [--payload x] [--sample-every 0] [--progress-s 5] [--drain-timeout-s 60]
//           [--ca-file ca.pem] [--username U]   (the password in $CDC_LOADGEN_CASSANDRA_PASSWORD,
//                                                never an argument: those are visible to all)
//
// It connects, prepares "INSERT INTO <table> (id, v, n) VALUES (?, ?, ?)", prints
// {"event":"ready"} and then runs one load per stdin line "go <seconds> <rate> <base>" until stdin
// closes (one JVM serves several loads: its JIT warms up on the first). In a run N sender threads
// each pace their share of the rate with a token bucket (a burst of at most burst-s seconds of
// it; a sender sleeps at least tick-s and then sends everything due), a window of in-flight
// requests shared by the threads bounds what is outstanding, and write i (0, 1, 2, ... unique
// across the threads) binds (base + i, payload, i). Writes the window or a slow server hold back
// are not made up later beyond the burst: the achieved rate falls below the target.
//
// Output, one JSON object a line on stdout, per run:
//   {"event":"started","mono_ns":...}          System.nanoTime() when the sending started
//   {"event":"sample","i":...,"acked_ns":...}  every sample-every-th write, when acked
//   {"event":"progress",...}                   every progress-s seconds: counts so far
//   {"event":"done",...}                       issued, acked, failed, errors (the first few),
//       window_full, elapsed_s, drain_s, cpu_s (this JVM's CPU from the start of the sending
//       until drained), cpu_total_s (its CPU since it started: compiling, connecting, JIT)
// System.nanoTime() is CLOCK_MONOTONIC on Linux, the clock of Python's time.monotonic():
// javaload.py checks that at each "started".

import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.CqlSessionBuilder;
import com.datastax.oss.driver.api.core.ProtocolVersion;
import com.datastax.oss.driver.api.core.config.DefaultDriverOption;
import com.datastax.oss.driver.api.core.config.DriverConfigLoader;
import com.datastax.oss.driver.api.core.cql.PreparedStatement;
import com.datastax.oss.driver.api.core.ssl.ProgrammaticSslEngineFactory;
import com.typesafe.config.ConfigRenderOptions;
import com.typesafe.config.ConfigValueFactory;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public final class LoadGen {
  static final int MAX_ERRORS = 5;
  static final String PASSWORD_ENV = "CDC_LOADGEN_CASSANDRA_PASSWORD"; // pragma: allowlist secret (the variable's name)

  /** `rate` tokens a second, at most `burst` saved up; starts empty at `now` (seconds). */
  static final class TokenBucket {
    final double rate;
    final double burst;
    double tokens;
    double last;

    TokenBucket(double rate, double burst, double now) {
      this.rate = rate;
      this.burst = Math.max(burst, 1.0);
      this.last = now;
    }

    /** Refill up to `now` and take every whole token there is (how many sends are due). */
    int take(double now) {
      tokens = Math.min(burst, tokens + Math.max(now - last, 0.0) * rate);
      last = now;
      int n = (int) tokens;
      tokens -= n;
      return n;
    }

    /** Seconds from the last refill until the next whole token. */
    double waitSeconds() {
      return Math.max(1.0 - tokens, 0.0) / rate;
    }
  }

  final CqlSession session;
  final PreparedStatement insert;
  final int threads;
  final int window;
  final double burstS;
  final long tickNs;
  final String payload;
  final long sampleEvery;
  final double progressS;
  final double drainTimeoutS;
  final PrintStream out =
      new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);

  LoadGen(CqlSession session, Map<String, String> opt) {
    this.session = session;
    this.insert =
        session.prepare("INSERT INTO " + opt.get("table") + " (id, v, n) VALUES (?, ?, ?)");
    this.threads = Integer.parseInt(opt.get("threads"));
    this.window = Integer.parseInt(opt.get("window"));
    this.burstS = Double.parseDouble(opt.get("burst-s"));
    this.tickNs = (long) (Double.parseDouble(opt.get("tick-s")) * 1e9);
    this.payload = opt.get("payload");
    this.sampleEvery = Long.parseLong(opt.get("sample-every"));
    this.progressS = Double.parseDouble(opt.get("progress-s"));
    this.drainTimeoutS = Double.parseDouble(opt.get("drain-timeout-s"));
    if (threads < 1 || window < 1) {
      throw new IllegalArgumentException("threads and window must be at least 1");
    }
  }

  synchronized void emit(Map<String, Object> event) {
    out.println(ConfigValueFactory.fromMap(event).render(ConfigRenderOptions.concise()));
    out.flush();
  }

  static Map<String, Object> event(String name) {
    Map<String, Object> e = new LinkedHashMap<>();
    e.put("event", name);
    return e;
  }

  static long cpuNanos() {
    return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
        .getProcessCpuTime();
  }

  /** One "go": `rate` writes/s for `seconds`, write i binding (base + i, payload, i). */
  final class Run {
    final double rate;
    final long base;
    final Semaphore slots = new Semaphore(window);
    final LongAdder issued = new LongAdder();
    final LongAdder acked = new LongAdder();
    final LongAdder failed = new LongAdder();
    final LongAdder windowFull = new LongAdder();
    final List<String> errors = new ArrayList<>();

    Run(double rate, long base) {
      if (rate <= 0) {
        throw new IllegalArgumentException("rate must be positive");
      }
      this.rate = rate;
      this.base = base;
    }

    void fail(Throwable err) {
      synchronized (errors) {
        if (errors.size() < MAX_ERRORS) {
          errors.add(err.getClass().getSimpleName() + ": " + err.getMessage());
        }
      }
      failed.increment();
    }

    void send(long i) {
      issued.increment();
      boolean sampled = sampleEvery > 0 && i % sampleEvery == 0;
      try {
        session
            .executeAsync(
                insert
                    .boundStatementBuilder()
                    .setLong(0, base + i)
                    .setString(1, payload)
                    .setInt(2, (int) i)
                    .build())
            .whenComplete(
                (rs, err) -> {
                  if (err != null) {
                    fail(err);
                  } else {
                    if (sampled) { // before it counts: a run's samples precede its "done"
                      Map<String, Object> e = event("sample");
                      e.put("i", i);
                      e.put("acked_ns", System.nanoTime());
                      emit(e);
                    }
                    acked.increment();
                  }
                  slots.release();
                });
      } catch (RuntimeException err) { // refused before it left: a failed write
        fail(err);
        slots.release();
      }
    }

    void sender(int index, long startNs, long endNs) {
      double share = rate / threads;
      TokenBucket bucket = new TokenBucket(share, share * burstS, startNs / 1e9);
      long k = 0;
      while (true) {
        long now = System.nanoTime();
        if (now >= endNs) {
          return;
        }
        int due = bucket.take(now / 1e9);
        if (due == 0) {
          long wait = Math.max((long) (bucket.waitSeconds() * 1e9), tickNs);
          LockSupport.parkNanos(Math.min(wait, endNs - now));
          continue;
        }
        for (int j = 0; j < due; j++) {
          if (!slots.tryAcquire()) {
            windowFull.increment();
            // wait for a slot, but never past the end of the run
            try {
              long left = endNs - System.nanoTime();
              if (left <= 0 || !slots.tryAcquire(left, TimeUnit.NANOSECONDS)) {
                return;
              }
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              return;
            }
          }
          send(index + k * threads);
          k++;
        }
      }
    }

    Map<String, Object> counts(String name) {
      Map<String, Object> e = event(name);
      e.put("issued", issued.sum());
      e.put("acked", acked.sum());
      e.put("failed", failed.sum());
      e.put("window_full", windowFull.sum());
      return e;
    }

    void run(double seconds) throws InterruptedException {
      long cpu0 = cpuNanos();
      long start = System.nanoTime();
      long end = start + (long) (seconds * 1e9);
      Map<String, Object> started = event("started");
      started.put("mono_ns", start);
      emit(started);
      List<Thread> senders = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int index = t;
        Thread th = new Thread(() -> sender(index, start, end), "sender-" + t);
        th.setDaemon(true);
        th.start();
        senders.add(th);
      }
      long progressMs = Math.max((long) (progressS * 1000), 1);
      for (Thread th : senders) {
        while (th.isAlive()) {
          th.join(progressMs);
          if (th.isAlive()) {
            emit(counts("progress"));
          }
        }
      }
      long stopped = System.nanoTime();
      long deadline = stopped + (long) (drainTimeoutS * 1e9);
      while (acked.sum() + failed.sum() < issued.sum() && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
      long drained = System.nanoTime();
      long cpu1 = cpuNanos();
      Map<String, Object> done = counts("done");
      synchronized (errors) {
        done.put("errors", new ArrayList<>(errors));
      }
      done.put("elapsed_s", (stopped - start) / 1e9);
      done.put("drain_s", (drained - stopped) / 1e9);
      done.put("cpu_s", (cpu1 - cpu0) / 1e9);
      done.put("cpu_total_s", cpu1 / 1e9);
      done.put("target_rate", rate);
      done.put("threads", threads);
      done.put("window", window);
      emit(done);
    }
  }

  static SSLContext sslContext(String caFile) throws Exception {
    KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
    trust.load(null, null);
    try (InputStream in = new FileInputStream(caFile)) {
      int n = 0;
      for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
        trust.setCertificateEntry("ca-" + n++, cert);
      }
    }
    TrustManagerFactory tmf =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, tmf.getTrustManagers(), null);
    return ctx;
  }

  static CqlSession connect(Map<String, String> opt) throws Exception {
    DriverConfigLoader config =
        DriverConfigLoader.programmaticBuilder()
            .withString(DefaultDriverOption.PROTOCOL_VERSION, ProtocolVersion.V5.name())
            .withString(
                DefaultDriverOption.LOAD_BALANCING_POLICY_CLASS, "DcInferringLoadBalancingPolicy")
            .withDuration(DefaultDriverOption.REQUEST_TIMEOUT, Duration.ofSeconds(30))
            .withDuration(DefaultDriverOption.CONNECTION_INIT_QUERY_TIMEOUT, Duration.ofSeconds(10))
            .build();
    CqlSessionBuilder b =
        CqlSession.builder()
            .withConfigLoader(config)
            .addContactPoint(
                new InetSocketAddress(opt.get("host"), Integer.parseInt(opt.get("port"))));
    if (opt.containsKey("ca-file")) { // TLS verified with the CA, host names checked
      b.withSslEngineFactory(
          new ProgrammaticSslEngineFactory(sslContext(opt.get("ca-file")), null, true));
    }
    if (opt.containsKey("username")) {
      String password = System.getenv(PASSWORD_ENV);
      if (password == null) {
        throw new IllegalArgumentException("--username needs the password in " + PASSWORD_ENV);
      }
      b.withAuthCredentials(opt.get("username"), password);
    }
    return b.build();
  }

  static final Map<String, String> DEFAULTS =
      Map.of(
          "threads", "2",
          "window", "512",
          "burst-s", "0.1",
          "tick-s", "0",
          "payload", "x",
          "sample-every", "0",
          "progress-s", "5",
          "drain-timeout-s", "60");
  static final List<String> REQUIRED = List.of("host", "port", "table");

  static Map<String, String> parse(String[] args) {
    Map<String, String> opt = new HashMap<>(DEFAULTS);
    for (int k = 0; k < args.length; k += 2) {
      if (!args[k].startsWith("--") || k + 1 >= args.length) {
        throw new IllegalArgumentException("expected --name value pairs, got " + args[k]);
      }
      opt.put(args[k].substring(2), args[k + 1]);
    }
    for (String name : REQUIRED) {
      if (!opt.containsKey(name)) {
        throw new IllegalArgumentException("--" + name + " is required");
      }
    }
    return opt;
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> opt = parse(args);
    try (CqlSession session = connect(opt)) {
      LoadGen gen = new LoadGen(session, opt);
      gen.emit(event("ready"));
      BufferedReader stdin =
          new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      for (String line; (line = stdin.readLine()) != null; ) { // until stdin closes
        String[] go = line.trim().split("\\s+");
        if (go.length != 4 || !go[0].equals("go")) {
          throw new IllegalArgumentException(
              "expected \"go <seconds> <rate> <base>\" on stdin, got " + line);
        }
        gen.new Run(Double.parseDouble(go[2]), Long.parseLong(go[3]))
            .run(Double.parseDouble(go[1]));
      }
    }
  }
}
