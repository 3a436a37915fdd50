//! OpenID Connect on top of the OAuth core: id_tokens and userinfo claims.

pub mod id_token;
pub mod userinfo;
