extension RedisConnection {
    /// Whether this connection routes over a Redis Cluster.
    public var isCluster: Bool { cluster != nil }

    /// The cluster's masters, in slot order; the one server of any other connection.
    public var masters: [RedisEndpoint.Node] {
        if let cluster { return cluster.masters }
        return server.map { [$0] } ?? []
    }

    /// The master serving the slot of `key` (a cluster connection), or this connection's server.
    public func master(of key: String) -> RedisEndpoint.Node? {
        if let cluster { return cluster.master(of: RedisClusterSlot.of(key)) }
        return server
    }

    /// The master serving `slot` (a cluster connection), or this connection's server.
    public func master(ofSlot slot: Int) -> RedisEndpoint.Node? {
        if let cluster { return cluster.master(of: slot) }
        return server
    }

    /// Sends `commands` to one master, unrouted: per-shard commands (`INFO`, `DBSIZE`, `SCAN`). On a connection
    /// that is not a cluster's, `node` is ignored.
    public func pipeline(_ commands: [RedisCommand], on node: RedisEndpoint.Node) throws(RedisError) -> [RedisReply] {
        if let cluster { return try cluster.pipeline(commands, on: node) }
        return try pipeline(commands)
    }
}
