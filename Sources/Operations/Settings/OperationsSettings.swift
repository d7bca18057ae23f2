public import ConveyorCore
import Foundation
public import Redis
public import SidekiqQueue

/// Where Redis is and how it is reached: every command reads these.
public enum RedisSettings {
    public static let redisUrl = Setting("REDIS_URL", flag: "--redis-url", .url(["redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster", "unix"]), default: "redis://127.0.0.1:6379/0", 
            doc: "`redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS), `redis+sentinel://[user:password@]host[:port],host[:port],…/master[/db]` (sentinels, port 26379 by default; `rediss+sentinel://` speaks TLS to the sentinels and the data nodes), `redis+cluster://[user:password@]host[:port],host[:port],…` (a Redis Cluster's seed nodes, database 0; `rediss+cluster://` for TLS; switches to the [cluster key layout](../Jobs/README.md#on-a-redis-cluster-redis_urlrediscluster)), or `unix:///path/redis.sock?db=N`. A user name means an ACL user (`AUTH user password`); user and password are percent-decoded (`p%40ss` is `p@ss`) and never logged. See [Production Redis](operations.md#production-redis).", check: { text in
            do {
                _ = try RedisEndpoint(url: text, environment: [:])
                return nil
            } catch { return "\(error)" }
        })

    public static let namespace = Setting("CONVEYOR_NAMESPACE", flag: "--namespace", 
            doc: "Prefix for every Redis key (`x:queue:default`), to share one Redis between deployments")

    public static let redisCaFile = Setting("CONVEYOR_REDIS_CA_FILE", note: "the system's certificate authorities", 
            doc: "PEM file of the authorities that sign the Redis server's certificate (`rediss://` only). The certificate is always verified, host name included: connect by a name or address the certificate lists.")

    public static let redisCertFile = Setting("CONVEYOR_REDIS_CERT_FILE", 
            doc: "PEM client certificate, with `CONVEYOR_REDIS_KEY_FILE`, for servers that require mutual TLS (`tls-auth-clients yes`).")

    public static let redisKeyFile = Setting("CONVEYOR_REDIS_KEY_FILE", 
            doc: "PEM key of `CONVEYOR_REDIS_CERT_FILE`.")

    public static let redisSentinelUsername = Setting("CONVEYOR_REDIS_SENTINEL_USERNAME", 
            doc: "The sentinels' own ACL user, for `redis+sentinel://` URLs only (the URL's user stays the data nodes').")

    public static let redisSentinelPassword = Setting("CONVEYOR_REDIS_SENTINEL_PASSWORD", secret: true, 
            doc: "The sentinels' own password (`requirepass` in sentinel.conf), for `redis+sentinel://` URLs only; the URL's password stays the data nodes'. Never logged.")

    public static let redisTlsInsecure = Setting("CONVEYOR_REDIS_TLS_INSECURE", .onOff, default: "off", 
            doc: "`1` accepts any server certificate and warns on standard error at every start. Tests against a throwaway server only.")

    public static let redisWaitReplicas = Setting("CONVEYOR_REDIS_WAIT_REPLICAS", .int(0...16), default: "0", 
            doc: "Replicas each enqueue and each batch of acknowledgements waits for (`WAIT`, in the same round trip); see docs/operations.md, \"Replication and failover\"")

    public static let redisWaitTimeoutMs = Setting("CONVEYOR_REDIS_WAIT_TIMEOUT_MS", .int(1...60_000), default: "1000", 
            doc: "How long that `WAIT` may block; a wait that times out is logged, the write stands on the master")

    public static let all = [redisUrl, namespace, redisCaFile, redisCertFile, redisKeyFile, redisSentinelUsername, redisSentinelPassword, redisTlsInsecure, redisWaitReplicas, redisWaitTimeoutMs]

    public static let group = SettingGroup("Redis", all)
}

/// Outcomes in PostgreSQL, metrics and the HTTP endpoint.
public enum OperationsSettings {
    public static let databaseUrl = Setting("DATABASE_URL", flag: "--database-url", .url(["postgres", "postgresql"]), note: "none: outcomes are not recorded (`make run`: its private PostgreSQL)", 
            doc: "PostgreSQL for `conveyor migrate`, job outcomes, the mail ledger, summaries and uploads (`postgres://user:pass@host:5432/db`).")

    public static let metricsAddr = Setting("CONVEYOR_METRICS_ADDR", flag: "--metrics-addr", 
            doc: "Same as `conveyor worker --metrics-addr host:port` (e.g. `127.0.0.1:9464`, `0.0.0.0:9464` in containers). Each connection is served on its own thread, at most 64 at once (a new one then closes the oldest that is still sending its request); a client has 2 s to send request headers of at most 8 KiB (408 / 431 otherwise) and 10 s to take the answer, so idle or slow clients cannot hold up `/healthz`.", check: { text in
            do {
                _ = try MetricsServer.address(text)
                return nil
            } catch { return "expected host:port with an IPv4 host, like 127.0.0.1:9464" }
        })

    public static let metricsPollSeconds = Setting("CONVEYOR_METRICS_POLL_SECONDS", .number(0.5...3600), default: "5", 
            doc: "How often each worker reads queue depths, latencies and set sizes from Redis for the gauges (0.5-3600).")

    public static let resultsBatch = Setting("CONVEYOR_RESULTS_BATCH", .int(1...5000), default: "1000", 
            doc: "Most outcomes written by one `COPY` (max 5000).")

    public static let resultsWriters = Setting("CONVEYOR_RESULTS_WRITERS", .int(1...8), default: "2", 
            doc: "Flusher threads, each with its own PostgreSQL connection (max 8).")

    public static let resultsFlushMs = Setting("CONVEYOR_RESULTS_FLUSH_MS", .number(0...60_000), default: "50", 
            doc: "How long a partial batch waits for more outcomes before it is written (0-60000).")

    public static let resultsBuffer = Setting("CONVEYOR_RESULTS_BUFFER", .int(1...10_000_000), default: "100000", 
            doc: "Most outcomes one worker holds in memory while PostgreSQL is slow or down (1-10000000). When full, the **oldest** buffered outcome leaves memory; a worker's outcomes stay in its Redis journal and are written later, so only outcomes recorded without a journal (none in `conveyor worker`) are lost, counted in `conveyor_result_writes_dropped_total` (alert `ConveyorResultWritesDropped`).")

    public static let all = [databaseUrl, metricsAddr, metricsPollSeconds, resultsBatch, resultsWriters, resultsFlushMs, resultsBuffer]

    public static let group = SettingGroup("Operations: results, metrics, HTTP", all)
}

extension ResultStore.Configuration {
    /// From the one settings reader: `CONVEYOR_RESULTS_BATCH`, `_BUFFER`, `_FLUSH_MS`, `_WRITERS` (checked there).
    public init(settings: SettingsReader) {
        self.init()
        batchSize = settings.int(OperationsSettings.resultsBatch)
        capacity = settings.int(OperationsSettings.resultsBuffer)
        flushInterval = settings.number(OperationsSettings.resultsFlushMs) / 1000
        writers = settings.int(OperationsSettings.resultsWriters)
    }
}

extension RedisEndpoint {
    /// `REDIS_URL` with the TLS and sentinel settings (`RedisSettings`), from the one settings reader.
    public init(settings: SettingsReader) throws(RedisError) {
        try self.init(
            url: settings.text(RedisSettings.redisUrl) ?? RedisSettings.redisUrl.defaultValue!, environment: settings.values(of: RedisSettings.all))
    }
}

extension ReplicaWait {
    /// `CONVEYOR_REDIS_WAIT_REPLICAS` and `CONVEYOR_REDIS_WAIT_TIMEOUT_MS` from the one settings reader.
    public init(settings: SettingsReader) throws(JobFailure) {
        try self.init(environment: settings.values(of: [RedisSettings.redisWaitReplicas, RedisSettings.redisWaitTimeoutMs]))
    }
}
