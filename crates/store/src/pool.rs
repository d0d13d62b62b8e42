//! How big the store's connection pool is and how long its waits may last.

use std::time::Duration;

/// How big the store's connection pool is and how long its waits may last. The defaults suit
/// one process on a small PostgreSQL; a deployment sizes `max_connections` so that every
/// process together stays below the server's `max_connections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections one process holds at most (on SQLite: its readers; it writes through one).
    pub max_connections: u32,
    /// How long a request waits for a free connection before it fails as unavailable.
    pub acquire_timeout: Duration,
    /// How long one statement may run before PostgreSQL cancels it; `None` for no limit.
    /// Migrations are not limited by it.
    pub statement_timeout: Option<Duration>,
    /// How long a session may sit idle inside a transaction before PostgreSQL ends it, and
    /// with it the row locks a stalled process holds.
    pub idle_in_transaction_timeout: Duration,
    /// How long an unused connection is kept open; `None` keeps it until the process ends.
    pub idle_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: None,
            // Every transaction of techpack runs its statements back to back; the longest
            // wait inside one is a blob deletion during cleanup.
            idle_in_transaction_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// A connection idle for less than this is taken as alive without a round trip to check it:
/// under load every connection was in use a moment ago, and the check would add a round trip
/// to every transaction. One idle for longer (the server may have restarted meanwhile) is
/// checked first, and replaced when it is dead.
pub(crate) const CHECK_IDLE_CONNECTION_AFTER: Duration = Duration::from_secs(1);

/// `duration` as a PostgreSQL setting value in milliseconds (0 turns a timeout off).
pub(crate) fn postgres_millis(duration: Option<Duration>) -> String {
    format!("{}ms", duration.map_or(0, |d| d.as_millis().max(1)))
}
