//! Forwarding to upstream resolvers and rule targets, with failover, health, bounded in-flight work and a
//! shared cache that can serve stale answers. (Helper-owned: being written.)
