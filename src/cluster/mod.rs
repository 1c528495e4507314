//! Redis Cluster upstreams (`lb_policy = "redis_cluster"`): key slots and
//! the slot map (`slots`), their discovery and refresh on the control side
//! (`discovery`), and redirections on the data path (`redirect`).
pub mod discovery;
pub mod redirect;
pub mod slots;
