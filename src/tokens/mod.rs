//! Signing keys, the published JWKS, and JWT signing.

pub mod keys;
pub mod sealing;

pub use keys::{Algorithm, KeyRing, KeySet, KeyStatus};
