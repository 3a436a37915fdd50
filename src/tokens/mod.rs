//! Signing keys, the published JWKS, and JWT signing.

pub mod es256;
pub mod keys;
pub mod sealing;
pub mod verified;

pub use keys::{Algorithm, KeyRing, KeySet, KeyStatus};
