//! Event bus adapters: the in-process bus of the embedded mode, RabbitMQ (durable topic
//! exchange, publisher confirms, a durable queue and a dead-letter queue per consumer group)
//! and Redis Streams (consumer groups, `XAUTOCLAIM` of stuck deliveries, a dead-letter stream
//! per group), and a Redis stream in a format of its own for readers outside Portside.

mod in_process;
mod rabbit;
mod redis_sink;
mod redis_streams;

pub use in_process::InProcessBus;
pub use rabbit::RabbitBus;
pub use redis_sink::RedisStreamSink;
pub use redis_streams::RedisStreamsBus;
