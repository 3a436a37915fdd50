//! OpenID Connect on top of the OAuth core: id_tokens, userinfo claims and
//! RP-initiated logout.

pub mod backchannel;
pub mod id_token;
pub mod logout;
pub mod userinfo;
