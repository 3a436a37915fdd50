//! Signing keys, the published JWKS, and JWT signing.

pub mod keys;

pub use keys::{Algorithm, KeyRing, KeySet, KeyStatus};
