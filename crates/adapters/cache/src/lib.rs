//! Cache adapters: a bounded in-memory cache (the embedded default) and Redis.

mod memory;
mod redis_cache;

pub use memory::MemoryCache;
pub use redis_cache::RedisCache;
