//! Where a key goes: hashtag → hash → ring → endpoint.
pub mod hash;
pub mod hashtag;
pub mod ketama;
pub mod maglev;
pub mod ring;
pub mod ring_hash;
