//! Cache adapters: a bounded in-memory cache (the embedded default), Redis, and none.

mod memory;
mod none;
mod redis_cache;

pub use memory::MemoryCache;
pub use none::NoCache;
pub use redis_cache::RedisCache;
