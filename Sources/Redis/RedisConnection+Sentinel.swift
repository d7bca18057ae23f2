extension RedisConnection {
    /// Asks each sentinel in turn for the master called `name`, connects to it, authenticates and checks with `ROLE`
    /// that it is a master: right after a failover a sentinel can still name the old one.
    ///
    /// The connection follows the sentinels' `+switch-master` announcements from then on (see `SentinelWatch`): the
    /// generation is read before the sentinels are asked, so a switch during the connect breaks it too.
    func openMaster(nodes: [RedisEndpoint.Node], name: String, connectTimeout: Double, commandTimeout: Double?) throws(RedisError) {
        if watch == nil { watch = SentinelWatch.retain(for: endpoint, nodes: nodes, master: name) }
        connectedGeneration = watch?.generation ?? 0
        var failures: [String] = []
        for sentinel in nodes {
            let master: RedisEndpoint.Node
            do throws(RedisError) {
                master = try Self.master(named: name, asking: sentinel, of: endpoint, timeout: connectTimeout)
            } catch {
                failures.append("sentinel \(sentinel): \(error.message)")
                continue
            }
            do throws(RedisError) {
                try open(host: master.host, port: master.port, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
                try authenticate()
                let role = try command("ROLE").check()
                let kind = role.array?.first?.text ?? "\(role)"
                if kind == "master" { return }
                failures.append("sentinel \(sentinel) named \(master), whose ROLE is \(kind)")
            } catch {
                failures.append("sentinel \(sentinel) named \(master): \(error.message)")
            }
            try discardSocket()
        }
        throw .connection("\(endpoint): no sentinel named a usable master: \(failures.joined(separator: "; "))")
    }

    /// `SENTINEL get-master-addr-by-name`: the address one sentinel holds for the master called `name`.
    private static func master(named name: String, asking sentinel: RedisEndpoint.Node, of endpoint: RedisEndpoint, timeout: Double) throws(RedisError) -> RedisEndpoint.Node {
        let connection = try RedisConnection(
            RedisEndpoint(address: .tcp(host: sentinel.host, port: sentinel.port), username: endpoint.sentinelUsername,
                          password: endpoint.sentinelPassword, tls: endpoint.tls),
            connectTimeout: timeout, commandTimeout: timeout)
        let reply = try connection.command("SENTINEL", "get-master-addr-by-name", name).check()
        guard let parts = reply.array, parts.count == 2, let host = parts[0].text, let port = parts[1].int else {
            throw .connection(reply.isNull ? "does not know a master called \(name)" : "unexpected reply \(reply)")
        }
        return RedisEndpoint.Node(host: host, port: port)
    }
}
