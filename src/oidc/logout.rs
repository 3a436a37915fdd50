//! OIDC RP-Initiated Logout 1.0: which requests are in order, whose session a
//! request is tied to, and where the person may go afterwards. A post-logout
//! redirect goes only to a URI the client registered; a request not tied to the
//! browser's session by its `id_token_hint` is confirmed by the person first, so
//! no site can sign people out behind their backs.

use url::Url;

use crate::identity::sessions::Session;
use crate::oauth::clients::Client;
use crate::oauth::params::Params;
use crate::oauth::tokens::IssuerConfig;
use crate::store::clients::ClientCache;

type Claims = serde_json::Map<String, serde_json::Value>;

/// A logout request whose parameters are in order.
#[derive(Debug)]
pub struct LogoutRequest {
    pub params: Params,
    /// The verified claims of `id_token_hint` (expired ones count: the hint names
    /// a session, it grants nothing).
    hint: Option<Claims>,
    pub client: Option<std::sync::Arc<Client>>,
    /// A `post_logout_redirect_uri` the client registered.
    redirect: Option<Url>,
}

/// Where the person goes once signed out.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Straight back to the client.
    Redirect(Url),
    /// A page, with a link back to the client if it named a registered URI.
    Page { continue_to: Option<Url> },
}

/// Checks `pairs`; the refusal is a sentence for the person.
pub async fn check(
    config: &IssuerConfig,
    clients: &ClientCache,
    pairs: Vec<(String, String)>,
) -> Result<Result<LogoutRequest, &'static str>, sea_orm::DbErr> {
    let Ok(params) = Params::unique(pairs) else {
        return Ok(Err("The request repeats a parameter."));
    };
    let hint = match params.get("id_token_hint") {
        None => None,
        Some(token) => match config.keys.keys().verify_ignoring_expiry(
            token,
            "JWT",
            config.issuer(),
            chrono::Utc::now(),
        ) {
            Ok(claims) => Some(claims),
            Err(_) => return Ok(Err("The id_token_hint was not issued by this server.")),
        },
    };
    let hint_client = hint
        .as_ref()
        .and_then(|c| c.get("aud"))
        .and_then(|v| v.as_str());
    let client_id = match (hint_client, params.get("client_id")) {
        (Some(a), Some(b)) if a != b => {
            return Ok(Err("client_id does not match the id_token_hint."));
        }
        (Some(id), _) | (None, Some(id)) => Some(id),
        (None, None) => None,
    };
    let client = match client_id {
        Some(id) => clients.find(&config.db, id).await?,
        None => None,
    };
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let registered = client
                .as_ref()
                .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
            match Url::parse(uri) {
                Ok(url) if registered => Some(url),
                _ => {
                    return Ok(Err(
                        "The return address is not registered for this application.",
                    ));
                }
            }
        }
    };
    Ok(Ok(LogoutRequest {
        params,
        hint,
        client,
        redirect,
    }))
}

impl LogoutRequest {
    /// Whether the hint names `session` (by `sid`, or by `sub` in a token without
    /// one): then the request is the session's own and needs no confirmation.
    pub fn names(&self, session: &Session) -> bool {
        self.hint.as_ref().is_some_and(|claims| {
            let sid = claims.get("sid").and_then(|v| v.as_str());
            let sub = claims.get("sub").and_then(|v| v.as_str());
            sid == Some(session.id.to_string().as_str())
                || (sid.is_none() && sub == Some(session.user_id.to_string().as_str()))
        })
    }

    /// Who is asking, in words for the page.
    pub fn requester(&self) -> String {
        self.client
            .as_ref()
            .map_or_else(|| "An application".to_owned(), |c| c.name.clone())
    }

    /// The registered post-logout URI the confirmation form may end at.
    pub fn redirect(&self) -> Option<&Url> {
        self.redirect.as_ref()
    }

    /// Where the person goes once signed out. Without a session, a redirect
    /// straight away would make this endpoint an open redirector for any client
    /// that registered a URI (RFC 9700 §4.11): only an id_token_hint of ours ties
    /// the request to the client (it named the same client), or the person's own
    /// confirmation does.
    pub fn after(&self, confirmed: bool) -> After {
        let back = self.redirect.clone().map(|mut url| {
            if let Some(s) = self.params.get("state") {
                url.query_pairs_mut().append_pair("state", s);
            }
            url
        });
        match back {
            Some(url) if confirmed || self.hint.is_some() => After::Redirect(url),
            continue_to => After::Page { continue_to },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(hint: Option<Claims>, redirect: Option<&str>, state: Option<&str>) -> LogoutRequest {
        let pairs = state
            .map(|s| vec![("state".to_owned(), s.to_owned())])
            .unwrap_or_default();
        LogoutRequest {
            params: Params::unique(pairs).expect("unique"),
            hint,
            client: None,
            redirect: redirect.map(|u| Url::parse(u).expect("url")),
        }
    }

    fn claims(pairs: &[(&str, &str)]) -> Claims {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect()
    }

    #[test]
    fn only_a_vouched_request_is_redirected_straight_back() {
        let back = "https://app.example/bye";
        let with_state = Url::parse("https://app.example/bye?state=s1").unwrap();
        let anonymous = request(None, Some(back), Some("s1"));
        assert_eq!(
            anonymous.after(false),
            After::Page {
                continue_to: Some(with_state.clone())
            },
            "nothing vouches: a link, not a redirect"
        );
        assert_eq!(anonymous.after(true), After::Redirect(with_state.clone()));
        let hinted = request(Some(claims(&[("sub", "u")])), Some(back), Some("s1"));
        assert_eq!(hinted.after(false), After::Redirect(with_state));
        assert_eq!(
            request(None, None, None).after(true),
            After::Page { continue_to: None }
        );
    }

    #[test]
    fn a_hint_names_a_session_by_sid_or_else_by_sub() {
        let now = chrono::Utc::now();
        let session = Session {
            id: uuid::Uuid::new_v4(),
            user_id: uuid::Uuid::new_v4(),
            email: "a@example.com".into(),
            created_at: now,
            last_seen_at: now,
            auth_time: now,
            amr: Vec::new(),
            ip: None,
            user_agent: None,
            idp: None,
        };
        let sid = session.id.to_string();
        let sub = session.user_id.to_string();
        let named = |c: Claims| request(Some(c), None, None).names(&session);
        assert!(named(claims(&[("sid", &sid), ("sub", &sub)])));
        assert!(named(claims(&[("sub", &sub)])));
        assert!(
            !named(claims(&[("sid", "another-session"), ("sub", &sub)])),
            "a token of another session of the same person does not count"
        );
        assert!(!named(claims(&[("sub", "someone-else")])));
        assert!(!request(None, None, None).names(&session));
    }
}
