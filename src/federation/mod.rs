//! Signing in with another identity provider (issue 23). For now: the
//! providers themselves, as data.

pub mod providers;
