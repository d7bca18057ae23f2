import ArgumentParser
import ConveyorCore
import Foundation
import Operations
import Postgres

/// `conveyor migrate`: creates or upgrades schema `conveyor` in `DATABASE_URL`.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or upgrade the conveyor schema in PostgreSQL (safe to run from several processes at once).",
        discussion: """
            Exit codes: 0 applied or already current, 1 a migration failed, 3 PostgreSQL unreachable, 64 bad usage.
            """)

    @Option(help: "PostgreSQL URL, postgres:// or postgresql:// (default: $DATABASE_URL).")
    var databaseURL: String?

    @Option(name: .customLong("config"), help: "A YAML file of settings, e.g. conveyor.yml (env CONVEYOR_CONFIG_FILE).")
    var configFile: String?

    @Flag(help: "List applied migrations instead of applying.")
    var status = false

    @Flag(help: "Print a JSON object instead of text.")
    var json = false

    func run() throws {
        var flags: [String: SettingsReader.FlagValue] = [:]
        if let databaseURL { flags[OperationsSettings.databaseUrl.name] = .init("--database-url", databaseURL) }
        if let configFile { flags[WorkerSettings.configFile.name] = .init("--config", configFile) }
        let settings = Catalogue.reader(flags: flags)
        let database = Set([OperationsSettings.databaseUrl.name])
        let problems = zip(settings.problems, settings.problemSettingsByProblem).filter { $0.1 == nil || database.contains($0.1!) }.map(\.0)
        if !problems.isEmpty {
            for problem in problems { FileHandle.standardError.write(Data("conveyor: \(problem)\n".utf8)) }
            throw ExitCode(64)
        }
        guard let url = settings.text(OperationsSettings.databaseUrl) else {
            FileHandle.standardError.write(Data("conveyor: set DATABASE_URL or pass --database-url\n".utf8))
            throw ExitCode(64)
        }
        let connection: PostgresConnection
        do {
            connection = try PostgresConnection(url: url)
        } catch {
            FileHandle.standardError.write(Data("conveyor: \(error)\n".utf8))
            throw ExitCode(3)
        }
        do {
            if status {
                let rows = try Migrator.appliedVersions(connection)
                let known = Composition.migrations
                let pending = known.filter { m in !rows.contains { $0.component == m.component && $0.version == m.version } }
                if json {
                    let applied = rows.map { "{\"component\":\(jsonString($0.component)),\"version\":\($0.version),\"name\":\(jsonString($0.name))}" }
                    let waiting = pending.map { "{\"component\":\(jsonString($0.component)),\"version\":\($0.version),\"name\":\(jsonString($0.name))}" }
                    print("{\"applied\":[\(applied.joined(separator: ","))],\"pending\":[\(waiting.joined(separator: ","))]}")
                } else {
                    for r in rows { print("applied  \(r.component) \(r.version) \(r.name)") }
                    for m in pending { print("pending  \(m.component) \(m.version) \(m.name)") }
                }
                return
            }
            let report = try Migrator(migrations: Composition.migrations).migrate(connection)
            if json {
                let applied = report.applied.map { "{\"component\":\(jsonString($0.component)),\"version\":\($0.version),\"name\":\(jsonString($0.name))}" }
                print("{\"applied\":[\(applied.joined(separator: ","))],\"already_applied\":\(report.alreadyApplied)}")
            } else if report.applied.isEmpty {
                print("schema conveyor is current (\(report.alreadyApplied) migrations)")
            } else {
                for m in report.applied { print("applied  \(m.component) \(m.version) \(m.name)") }
            }
        } catch let error as PostgresError where error.isConnectionError {
            FileHandle.standardError.write(Data("conveyor: \(error)\n".utf8))
            throw ExitCode(3)
        } catch {
            FileHandle.standardError.write(Data("conveyor: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}
