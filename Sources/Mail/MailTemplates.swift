public import ConveyorCore
public import Foundation
import Mustache

/// Templates rendered with Mustache from a folder: `<folder>/<template>/<locale>.subject.mustache`,
/// `<locale>.text.mustache` and `<locale>.html.mustache`, and optionally `<folder>/<template>/variables`: the `data`
/// fields the template needs, one per line (`#` starts a comment). A job whose `data` lacks one of them (absent,
/// null or empty) fails as `InvalidArguments` naming it, before anything is rendered or sent.
///
/// Values are HTML-escaped in the HTML part only; the subject and text part render data as is (a CR or LF that
/// reaches the subject is refused later as `HeaderInjection`). A missing locale falls back to its language
/// (`pt-BR` → `pt`) and then to the default locale. Files are read once and cached.
public final class MailTemplates: @unchecked Sendable {
    public let folder: URL
    public let defaultLocale: String
    private let lock = NSLock()
    private var cache: [String: MustacheTemplate] = [:]
    private var declared: [String: [String]] = [:]

    public init(folder: URL, defaultLocale: String = "en") {
        self.folder = folder
        self.defaultLocale = defaultLocale
    }

    /// The three rendered parts of one message.
    public struct Rendered: Sendable, Equatable {
        public var subject: String
        public var text: String
        public var html: String
        /// The locale whose files were used.
        public var locale: String
    }

    public func render(template: String, locale: String, data: JSONObject) throws(JobFailure) -> Rendered {
        guard MailTemplates.isSafeName(template) else {
            throw .invalidArguments("template \(template.debugDescription) must be lowercase letters, digits and underscores")
        }
        guard MailTemplates.isLocale(locale) else {
            throw .invalidArguments("locale \(locale.debugDescription) is not a language tag such as en or pt-BR")
        }
        let missing = try variables(template).filter { name in
            switch data[name] {
            case nil, .null?: return true
            case .string(let s)?: return s.isEmpty
            default: return false
            }
        }
        if !missing.isEmpty {
            throw .invalidArguments(
                "mail template \(template) needs data.\(missing.joined(separator: ", data.")); nothing was sent")
        }
        var candidates = [locale]
        if let dash = locale.firstIndex(of: "-") { candidates.append(String(locale[..<dash])) }
        candidates.append(defaultLocale)
        let context = MailTemplates.mustacheValue(.object(data))
        for candidate in candidates {
            guard let subject = try load(template, candidate, "subject"),
                let text = try load(template, candidate, "text"),
                let html = try load(template, candidate, "html")
            else { continue }
            let renderedSubject = subject.render(context).trimmingCharacters(in: CharacterSet(charactersIn: " \t\r\n"))
            return Rendered(subject: renderedSubject, text: text.render(context), html: html.render(context), locale: candidate)
        }
        throw .templateMissing(
            "mail template \(template) has no subject, text and html files for locale \(locale) (tried \(candidates.joined(separator: ", "))) in \(folder.path) (\(MailSettings.mailTemplates.name))")
    }

    /// The fields `<template>/variables` declares (none when there is no such file); read once.
    func variables(_ template: String) throws(JobFailure) -> [String] {
        lock.lock()
        if let known = declared[template] { lock.unlock(); return known }
        lock.unlock()
        let url = folder.appendingPathComponent(template).appendingPathComponent("variables")
        var names: [String] = []
        if let text = try? String(contentsOf: url, encoding: .utf8) {
            for line in text.split(whereSeparator: \.isNewline) {
                let name = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else { continue }
                guard name.count <= 64, name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-" }) else {
                    throw .permanent(.templateInvalid, "mail template \(template): variables lists \(name.prefix(64).debugDescription), not a field name")
                }
                names.append(name)
            }
        }
        lock.lock()
        declared[template] = names
        lock.unlock()
        return names
    }

    private func load(_ template: String, _ locale: String, _ part: String) throws(JobFailure) -> MustacheTemplate? {
        let key = "\(template)/\(locale).\(part)"
        lock.lock()
        if let cached = cache[key] { lock.unlock(); return cached }
        lock.unlock()
        let url = folder.appendingPathComponent(template).appendingPathComponent("\(locale).\(part).mustache")
        guard let source = try? String(contentsOf: url, encoding: .utf8) else { return nil }
        // Subjects and text parts are not HTML: switch escaping off for them.
        let prefixed = part == "html" ? source : "{{% CONTENT_TYPE: TEXT}}" + source
        let parsed: MustacheTemplate
        do {
            parsed = try MustacheTemplate(string: prefixed)
        } catch {
            throw .permanent(.templateInvalid, "mail template \(url.path) does not parse: \(error)")
        }
        lock.lock()
        cache[key] = parsed
        lock.unlock()
        return parsed
    }

    static func isSafeName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    static func isLocale(_ tag: String) -> Bool {
        let parts = tag.split(separator: "-", omittingEmptySubsequences: false)
        guard let first = parts.first, (2...3).contains(first.count), first.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) }) else { return false }
        return parts.dropFirst().allSatisfy { part in
            (2...8).contains(part.count) && part.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) }
        }
    }

    /// JSON → the dictionaries, arrays and scalars Mustache walks.
    static func mustacheValue(_ value: JSONValue) -> Any {
        switch value {
        case .null: return Optional<String>.none as Any
        case .bool(let b): return b
        case .number(let n): return n
        case .string(let s): return s
        case .array(let a): return a.map(mustacheValue)
        case .object(let o):
            var dict: [String: Any] = [:]
            for (key, value) in o { dict[key] = mustacheValue(value) }
            return dict
        }
    }
}
