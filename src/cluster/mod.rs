//! Redis Cluster upstreams (`lb_policy = "redis_cluster"`): key slots and
//! the slot map (`slots`), and their discovery and refresh on the control
//! side (`discovery`). Redirections are followed in `upstream::redirect`.
pub mod discovery;
pub mod slots;
