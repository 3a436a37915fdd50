//! Cross-site request forgery is refused by construction: every path of the route
//! table names its protection, and each protected path refuses a state-changing
//! request without its token, with a wrong one, or from another site — before
//! any handler runs. The exempt paths are exactly the OAuth/OIDC endpoints other
//! sites call by design.

mod common;

use common::{Browser, PASSWORD};
use tessera::http::csrf::Protection;

/// The paths a new route may not silently join: each is called by other sites
/// by design and authenticated by its own means (or changes nothing).
const EXEMPT: &[&str] = &[
    "/token",
    "/.well-known/jwks.json",
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/userinfo",
    "/introspect",
    "/revoke",
    "/authorize",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static/tessera.css",
    "/static/form_post.js",
    "/static/passkeys.js",
    "/static/copy.js",
    "/register",
    "/",
    "/account",
    "/end_session",
    "/register/{client_id}",
    // A link opened from a mailbox: the single-use token in it is the proof, and
    // a forged visit could only verify the address the link was sent to.
    "/email/verify/{token}",
    // The admin console's pages (reading, and confirmation pages whose forms
    // carry the token).
    "/admin",
    "/admin/users",
    "/admin/audit",
    "/admin/organizations",
    "/admin/clients",
    "/admin/keys",
    "/admin/users/{id}",
    "/admin/users/{id}/confirm/{action}",
    // The admin API: bearer tokens only, never a cookie, so nothing to forge.
    "/admin/api/openapi.json",
    "/admin/api/v1/users",
    "/admin/api/v1/audit-events",
    "/admin/api/v1/organizations",
    "/admin/api/v1/clients",
    "/admin/api/v1/apis",
    "/admin/api/v1/apis/grant",
    "/admin/api/v1/keys",
    "/admin/api/v1/keys/rotate",
    "/admin/api/v1/identity-providers",
    "/admin/api/v1/identity-providers/{id}",
    "/admin/api/v1/users/{id}",
    "/admin/api/v1/users/{id}/disable",
    "/admin/api/v1/users/{id}/enable",
    "/admin/api/v1/users/{id}/sign-out-everywhere",
    "/admin/api/v1/users/{id}/password-reset",
    "/admin/api/v1/users/{id}/sessions",
    "/admin/api/v1/users/{id}/sessions/{session}",
    "/admin/api/v1/users/{id}/api-tokens",
    "/admin/api/v1/api-tokens/{id}",
    "/admin/api/v1/organizations/{id}/service-accounts",
    "/admin/api/v1/organizations/{id}/members",
    "/admin/api/v1/organizations/{id}/members/{user}",
    "/admin/api/v1/clients/{id}",
    "/admin/api/v1/clients/{id}/rotate-secret",
    // Continue with {provider}: a link (GET) that only starts a flow bound to
    // this browser; nothing happens until the provider sends the person back.
    "/federation/{id}/start",
    // The provider's top-level redirect back: the flow's single-use state and
    // its browser-binding cookie are the proof, checked in `federation::flow`.
    "/federation/{id}/callback",
];

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "0190d3c4-0000-7000-8000-000000000001"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_protected_route_refuses_a_request_without_its_token() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    // Both secret cookies present: a session, and the pre-session one.
    browser.get("/login").await;
    browser.sign_up("ada@example.com", PASSWORD).await;
    let token = browser.get("/account").await.csrf();

    let table = tessera::http::csrf_protections();
    // Compared as sets: the table's order is chosen for routing cost.
    let mut exempt: Vec<&str> = table
        .iter()
        .filter(|(_, p)| *p == Protection::Exempt)
        .map(|(path, _)| *path)
        .collect();
    exempt.sort_unstable();
    let mut expected = EXEMPT.to_vec();
    expected.sort_unstable();
    assert_eq!(exempt, expected, "a route became exempt from CSRF checks");
    let protected: Vec<_> = table
        .iter()
        .filter(|(_, p)| *p != Protection::Exempt)
        .collect();
    assert!(protected.len() >= 20, "{protected:?}");

    for (path, protection) in protected {
        let url = app.url(&concrete(path));
        let attempts = [
            ("no token", None, false),
            (
                "a wrong token",
                Some("d3JvbmctdG9rZW4td3JvbmctdG9rZW4td3JvbmctdG9r"),
                false,
            ),
            ("another site", Some(token.as_str()), true),
        ];
        for (what, sent, cross_site) in attempts {
            let mut request = browser.client.post(&url);
            if cross_site {
                request = request.header("sec-fetch-site", "cross-site");
            }
            request = match protection {
                Protection::Form => {
                    let mut form = vec![("email", "ada@example.com"), ("decision", "allow")];
                    if let Some(sent) = sent {
                        form.push(("csrf", sent));
                    }
                    request.form(&form)
                }
                _ => {
                    let request = request.json(&serde_json::json!({ "email": "x@example.com" }));
                    match sent {
                        Some(sent) => request.header("x-csrf-token", sent),
                        None => request,
                    }
                }
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 403, "{path} with {what}");
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            if *protection == Protection::Form {
                assert!(content_type.starts_with("text/html"), "{path}");
            } else {
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"], "invalid_csrf_token", "{path}");
            }
        }
    }
    // Nothing was changed by any of it.
    assert!(browser.is_signed_in().await);
}

#[tokio::test]
async fn the_right_token_reaches_the_handler() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let signed_out = browser.submit("/account", "/logout", &[]).await;
    assert_eq!(signed_out.status, 303);
    assert!(!browser.is_signed_in().await);
}
