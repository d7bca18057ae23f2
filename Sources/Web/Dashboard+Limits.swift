import ConveyorCore
import Foundation
import Redis
import SidekiqQueue

extension Dashboard {
    /// `/limits`: the limits the workers declared, with the slots held and the jobs and keys waiting in lines.
    func limitsPage(_ v: Visitor) async throws -> WebResponse {
        let keys = keys
        let report = try await redis { connection in try FlowLimitReport.read(connection, keys: keys) }
        let rows = report.entries.map { e -> [String: Any] in
            let d = e.definition
            var classes: [String] = []
            if case .array(let list)? = d["classes"] { classes = list.compactMap(\.stringValue) }
            return [
                "name": Format.cut(e.name), "classes": Format.cut(classes.joined(separator: ", ")),
                "key": Format.cut(d["key"]?.stringValue ?? "(one key)"),
                "concurrency": d["concurrency"]?.intValue.map(String.init) ?? "-", "rate": Format.cut(d["rate"]?.stringValue ?? "-"),
                "running": Format.count(e.stat.running), "waiting": e.stat.waiting > 0 ? Format.count(e.stat.waiting) : false,
                "keysWaiting": Format.count(e.stat.keysWaiting),
            ]
        }
        var context: [String: Any] = ["limits": rows, "count": rows.count]
        if keys.cluster { context["cluster"] = true }
        return page("Limits", "limits", context, v, refresh: true, current: "/limits", counts: try await navCounts())
    }
}
