//! The Redis replay guard (feature `redis`): single use across several origin instances.

/// Placeholder; being written.
#[derive(Debug)]
pub struct RedisReplayGuard;
