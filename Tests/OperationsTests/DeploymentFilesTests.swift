import ConveyorCore
import Foundation
import Operations
import Testing

/// The Docker/Prometheus/Grafana/Kubernetes files are checked by the real tools, so a broken file fails CI even
/// though no Docker engine or cluster runs here.
struct DeploymentFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    static func has(_ tool: String) -> Bool {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (["/usr/bin", "/usr/local/bin", "/bin"] + path).contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
    }

    /// Whether `python3` can import these modules (`"jsonschema, yaml"`).
    static func pythonImports(_ modules: String) -> Bool {
        guard has("python3") else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import \(modules)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    private func run(_ arguments: [String]) throws -> (code: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.currentDirectoryURL = Self.root
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(.enabled(if: has("promtool"), "needs promtool (Debian prometheus)"))
    func alertRulesAndScrapeConfigAreValidAndFire() throws {
        let rules = try run(["promtool", "check", "rules", Self.path("docker/prometheus/alerts.yml")])
        #expect(rules.code == 0, "\(rules.output)")
        let config = try run(["promtool", "check", "config", Self.path("docker/prometheus/prometheus.yml")])
        #expect(config.code == 0, "\(config.output)")
        // Unit tests: each alert fires on the series that should trigger it.
        let tests = try run(["promtool", "test", "rules", Self.path("docker/prometheus/alerts_test.yml")])
        #expect(tests.code == 0, "\(tests.output)")
    }

    /// A pinned `--queues` list must name every family's queue, or that family never runs in the deployment (the
    /// shipped files pinned one without `llm`). Unpinned, the worker serves every registered class's queue, weighted.
    @Test func shippedDeploymentsServeEveryFamilysQueue() throws {
        let families = ["critical", "default", "media", "mail", "llm", "low"]
        for file in ["docker/Dockerfile", "docker-compose.yml", "docker/k8s/deployment.yaml"] {
            let text = try String(contentsOfFile: Self.path(file), encoding: .utf8)
            guard let range = text.range(of: #""--queues",\s*"([^"]+)""#, options: .regularExpression) else { continue }
            let value = text[range].split(separator: "\"").dropLast().last.map(String.init) ?? ""
            let named = Set(value.split(separator: ",").map { String($0.split(separator: ":")[0]) })
            #expect(named.isSuperset(of: families), "\(file) pins --queues \(value), which leaves out \(Set(families).subtracting(named).sorted())")
        }
    }

    /// The built-in kinds (Deployment, Service) against Kubernetes' own schemas, strictly (an unknown field fails).
    /// kubernetes-validate skips KEDA's and the Prometheus Operator's kinds; the next test checks those.
    @Test(.enabled(if: has("kubernetes-validate"), "needs kubernetes-validate (pip, installed by scripts/setup.sh)"))
    func kubernetesManifestsMatchTheirSchemas() throws {
        let r = try run(["kubernetes-validate", "--strict", Self.path("docker/k8s/deployment.yaml"), Self.path("docker/k8s/keda-scaledobject.yaml")])
        #expect(r.code == 0, "\(r.output)")
        #expect(r.output.contains("passed for resource deployment/conveyor-worker"), "\(r.output)")
        #expect(r.output.contains("passed for resource deployment/conveyor-web"), "\(r.output)")
        #expect(r.output.contains("passed for resource service/conveyor-web"), "\(r.output)")
        #expect(!r.output.contains("ERROR") && !r.output.contains("failed"), "\(r.output)")
    }

    /// The ScaledObject, TriggerAuthentication and PodMonitor against KEDA's and the Prometheus Operator's own CRD
    /// schemas (vendored in docker/k8s/schemas/), as strictly: an undeclared field fails, as does a custom kind with
    /// no schema. Broken copies prove the check can fail.
    @Test(.enabled(if: pythonImports("jsonschema, yaml"), "needs python3 with jsonschema and PyYAML (pip, installed by scripts/setup.sh)"))
    func customResourcesMatchTheirVendoredCRDSchemas() throws {
        let script = Self.path("scripts/validate-crds.py")
        let r = try run([
            "python3", script, Self.path("docker/k8s/deployment.yaml"), Self.path("docker/k8s/keda-scaledobject.yaml"),
            Self.path("docker/k8s/keda-scaledobject-cluster.yaml"),
        ])
        #expect(r.code == 0, "\(r.output)")
        for resource in [
            "PodMonitor/conveyor-worker", "ScaledObject/conveyor-worker", "TriggerAuthentication/conveyor-redis",
            "ScaledObject/conveyor-worker-cluster", "TriggerAuthentication/conveyor-redis-cluster",
        ] {
            #expect(r.output.contains("PASS") && r.output.contains(": \(resource) ("), "\(resource) not checked: \(r.output)")
        }
        #expect(!r.output.contains("ERROR"), "\(r.output)")

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-crds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        // The shipped ScaledObject with a misspelled field and a trigger that lost its type.
        let keda = try String(contentsOfFile: Self.path("docker/k8s/keda-scaledobject.yaml"), encoding: .utf8)
        let broken = keda.replacingOccurrences(of: "  minReplicaCount:", with: "  minReplicas:")
            .replacingOccurrences(of: "    - type: prometheus\n      metadata:", with: "    - metadata:")
        #expect(!broken.contains("minReplicaCount") && !broken.contains("type: prometheus"), "the manifest changed; update the broken copy")
        let brokenFile = dir.appendingPathComponent("keda-scaledobject.yaml")
        try broken.write(to: brokenFile, atomically: true, encoding: .utf8)
        let bad = try run(["python3", script, brokenFile.path])
        #expect(bad.code != 0, "\(bad.output)")
        #expect(bad.output.contains(#"ScaledObject/conveyor-worker: unknown field "spec.minReplicas""#), "\(bad.output)")
        #expect(bad.output.contains("ScaledObject/conveyor-worker: spec.triggers[2].type: Required value"), "\(bad.output)")

        // A custom kind without a vendored schema is an error, not a silent pass.
        let unknownFile = dir.appendingPathComponent("widget.yaml")
        try "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n".write(to: unknownFile, atomically: true, encoding: .utf8)
        let unknown = try run(["python3", script, unknownFile.path])
        #expect(unknown.code != 0 && unknown.output.contains("no vendored schema for Widget"), "\(unknown.output)")
    }

    /// The worker's pod runs unprivileged under the runtime's seccomp profile, the init container too, and mail has
    /// somewhere writable to go on a read-only root filesystem.
    @Test func theKubernetesWorkerIsConfinedAndCanWriteItsOutbox() throws {
        let text = try String(contentsOfFile: Self.path("docker/k8s/deployment.yaml"), encoding: .utf8)
        #expect(text.contains("seccompProfile: {type: RuntimeDefault}"))
        #expect(text.components(separatedBy: "readOnlyRootFilesystem: true").count - 1 == 3, "worker, init container and dashboard")
        #expect(text.contains("CONVEYOR_MAIL_OUTBOX") && text.contains("mountPath: /var/lib/conveyor/outbox"))
        #expect(text.contains("kind: PodMonitor"))
        let keda = try String(contentsOfFile: Self.path("docker/k8s/keda-scaledobject.yaml"), encoding: .utf8)
        #expect(keda.contains("kind: TriggerAuthentication") && keda.contains("authenticationRef: {name: conveyor-redis}"))
    }

    @Test(.enabled(if: has("docker-compose"), "needs docker-compose"))
    func composeFileIsValid() throws {
        let r = try run(["docker-compose", "-f", Self.path("docker-compose.yml"), "config", "-q"])
        #expect(r.code == 0, "\(r.output)")
    }

    @Test func everyMetricUsedByAlertsAndTheDashboardIsExported() throws {
        let metrics = ConveyorMetrics()
        metrics.jobStarted(jid: "j", jobClass: "noop", queue: "default")
        metrics.jobFinished(
            JobOutcome(jid: "j", jobClass: "noop", queue: "default", status: .retrying, attempts: 1, result: nil, failure: nil,
                       enqueuedAt: nil, startedAt: 0, finishedAt: 1, payload: JSONObject()))
        metrics.update(from: QueueSnapshot(queues: [.init(name: "default", depth: 1, latency: 2)], scheduled: 0, retries: 0, dead: 0,
                                           processed: 0, failed: 0, processes: [], readAt: 0))
        let exported = String(decoding: metrics.render(), as: UTF8.self)
        let names = Set(exported.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap {
            $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
        let used = try String(contentsOfFile: Self.path("docker/prometheus/alerts.yml"), encoding: .utf8)
            + String(contentsOfFile: Self.path("docker/grafana/dashboards/conveyor.json"), encoding: .utf8)
        let regex = try NSRegularExpression(pattern: "conveyor_[a-z_]+")
        let referenced = Set(regex.matches(in: used, range: NSRange(used.startIndex..., in: used)).map {
            String(used[Range($0.range, in: used)!])
        })
        #expect(!referenced.isEmpty)
        for name in referenced where !["conveyor_jobs_total_by_class"].contains(name) {
            #expect(names.contains(name), "\(name) is used by an alert or panel but not exported")
        }
    }

    @Test func kubernetesGracePeriodOutlastsTheShutdownTimeout() throws {
        let deployment = try String(contentsOfFile: Self.path("docker/k8s/deployment.yaml"), encoding: .utf8)
        let grace = try #require(deployment.firstMatch(of: /terminationGracePeriodSeconds: (\d+)/).flatMap { Int($0.1) })
        let timeout = try #require(deployment.firstMatch(of: /"--shutdown-timeout", "(\d+)s"/).flatMap { Int($0.1) })
        #expect(grace > timeout + 5)
        let keda = try String(contentsOfFile: Self.path("docker/k8s/keda-scaledobject.yaml"), encoding: .utf8)
        #expect(keda.contains("listName: queue:default"))
        // On a cluster the ready list keeps its Sidekiq name; KEDA's redis-cluster trigger finds its shard.
        let cluster = try String(contentsOfFile: Self.path("docker/k8s/keda-scaledobject-cluster.yaml"), encoding: .utf8)
        #expect(cluster.contains("type: redis-cluster") && cluster.contains("listName: queue:default") && cluster.contains("addresses: "))
        #expect(keda.contains("conveyor_queue_latency_seconds"))
        // BullMQ queues scale on Conveyor's depth gauge (prioritized and due delayed jobs included), which
        // BullMQDepth exports under that name.
        #expect(keda.contains(#"query: max(conveyor_bullmq_queue_depth{queue="images"})"#))
        // The dashboard is valid JSON that Grafana can load.
        let dashboard = try JSONValue(parsing: String(contentsOfFile: Self.path("docker/grafana/dashboards/conveyor.json"), encoding: .utf8))
        #expect(dashboard["uid"] == "conveyor")
        #expect((dashboard["panels"]?.arrayValue?.count ?? 0) >= 10)
    }

    /// The dashboard's address in a shipped file: the value after `--addr`, however the file quotes it.
    static func dashboardAddress(_ text: String) -> String? {
        text.firstMatch(of: /conveyor web --addr ([0-9.:]+)|"web", "--addr", "([0-9.:]+)"/).flatMap { m in (m.1 ?? m.2).map(String.init) }
    }

    /// The compose file and the Kubernetes example run the dashboard off loopback only with a password from a
    /// secret (a file under /run/secrets, a Secret), never a literal one; compose publishes it on the host's
    /// loopback only; the LLM keys come from .env and from a Secret, never from the files themselves.
    @Test func shippedDeploymentsRunTheDashboardWithASecretPasswordAndTakeLLMKeysFromSecrets() throws {
        let compose = try String(contentsOfFile: Self.path("docker-compose.yml"), encoding: .utf8)
        #expect(Self.dashboardAddress(compose) == "0.0.0.0:9292", "compose runs conveyor web")
        #expect(compose.contains(#"CONVEYOR_WEB_PASSWORD="$$(cat /run/secrets/web-password)""#), "the password is read from the secret's file")
        #expect(compose.contains("secrets:\n      - web-password") && compose.contains("web-password:\n    file: ./docker/web-password"))
        #expect(compose.contains(#""127.0.0.1:9292:9292""#), "published on the host's loopback only")
        #expect(!compose.contains("CONVEYOR_WEB_PASSWORD:"), "no literal password")
        #expect(compose.contains("OPENAI_API_KEY: ${OPENAI_API_KEY:-}") && compose.contains("ANTHROPIC_API_KEY: ${ANTHROPIC_API_KEY:-}"))
        let gitignore = try String(contentsOfFile: Self.path(".gitignore"), encoding: .utf8)
        #expect(gitignore.contains("/docker/web-password") && gitignore.contains("/.env"), "the secrets are never committed")

        let k8s = try String(contentsOfFile: Self.path("docker/k8s/deployment.yaml"), encoding: .utf8)
        #expect(Self.dashboardAddress(k8s) == "0.0.0.0:9292", "the example runs conveyor web")
        for (variable, secret, key) in [
            ("CONVEYOR_WEB_PASSWORD", "conveyor-web", "password"), ("OPENAI_API_KEY", "conveyor-llm", "openai-api-key"),
            ("ANTHROPIC_API_KEY", "conveyor-llm", "anthropic-api-key"),
        ] {
            #expect(k8s.contains("- name: \(variable)\n              valueFrom: {secretKeyRef: {name: \(secret), key: \(key)"), "\(variable) from Secret \(secret)")
        }
        #expect(!k8s.contains("{name: CONVEYOR_WEB_PASSWORD, value:") && !k8s.contains("{name: OPENAI_API_KEY, value:"))
    }

    /// What the shipped files give the dashboard is what `conveyor web` accepts: their address without a password is
    /// refused (exit 64, so a deployment that lost its secret does not serve an open dashboard); with a password of
    /// the documented length it passes the same checks.
    @Test(.enabled(if: TestEnv.binary != nil, "needs CONVEYOR_BIN"))
    func theShippedDashboardAddressNeedsThePassword() throws {
        let compose = try String(contentsOfFile: Self.path("docker-compose.yml"), encoding: .utf8)
        let address = try #require(Self.dashboardAddress(compose))
        func config(_ extra: [String: String]) throws -> (code: Int32, output: String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: TestEnv.binary!)
            p.arguments = ["config"]
            p.environment = ["PATH": "/usr/bin:/bin", "CONVEYOR_WEB_ADDR": address].merging(extra) { _, new in new }
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        let open = try config([:])
        #expect(open.code == 64 && open.output.contains("CONVEYOR_WEB_PASSWORD"), "\(open.output)")
        let secret = String(repeating: "s3cr3t-", count: 4)
        let guarded = try config(["CONVEYOR_WEB_PASSWORD": secret])
        #expect(guarded.code == 0, "\(guarded.output)")
        #expect(!guarded.output.contains(secret), "the password is masked")
        let short = try config(["CONVEYOR_WEB_PASSWORD": "elevenchars"])
        #expect(short.code == 64, "\(short.output)")
    }
}
