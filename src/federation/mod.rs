//! Signing in with another identity provider (issue 23): providers as data,
//! their servers' metadata and keys in memory, the browser flow, account
//! links, and id_tokens from native apps exchanged for ours.

pub mod flow;
pub mod id_token;
pub mod links;
pub mod providers;
pub mod upstream;

pub use flow::{Federation, FlowError};
