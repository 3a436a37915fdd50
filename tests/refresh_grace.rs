//! Graceful rotation (issue 22): two tabs or a retried request presenting the
//! refresh token that was just spent get the same successor, not a revoked
//! family — within `TESSERA_REFRESH_REUSE_GRACE`, for the same client, while
//! the successor is unused. Outside that, reuse still revokes the family.

mod common;

use chrono::Utc;
use common::TestApp;
use common::oauth::{TestClient, refresh, signed_in_with_refresh_token};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use tessera::store::entities::refresh_token;

fn token(v: &Value) -> &str {
    v["refresh_token"].as_str().unwrap()
}

async fn parallel_refreshes(
    app: &TestApp,
    client: &TestClient,
    presented: &str,
    n: usize,
) -> Vec<(u16, Value)> {
    let requests = (0..n).map(|_| refresh(app, client, presented));
    futures_join_all(requests).await
}

/// `join_all` without another dependency: spawn each, await each.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future,
{
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_parallel_refreshes_with_one_token_all_get_one_successor() {
    let app = common::spawn_app().await;
    let (_browser, client, tokens) = signed_in_with_refresh_token(&app).await;
    let answers = parallel_refreshes(&app, &client, token(&tokens), 8).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    let successors: std::collections::HashSet<&str> =
        answers.iter().map(|(_, b)| token(b)).collect();
    assert_eq!(successors.len(), 1, "one successor for all: {successors:?}");
    let successor = *successors.iter().next().unwrap();
    assert_ne!(successor, token(&tokens));
    // Each answer carries a usable access token of its own.
    let jtis: std::collections::HashSet<String> = answers
        .iter()
        .map(|(_, b)| common::jwt_claims(b["access_token"].as_str().unwrap())["jti"].to_string())
        .collect();
    assert_eq!(jtis.len(), 8);
    // The family is whole: the successor rotates on.
    let (status, next) = refresh(&app, &client, successor).await;
    assert_eq!(status, 200, "{next}");
    // No token is stored in clear: only digests and the sealed successor.
    let rows = refresh_token::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    for row in &rows {
        for value in [
            &row.token_hash,
            row.successor_sealed.as_ref().unwrap_or(&String::new()),
        ] {
            assert!(!value.contains(successor) && !value.contains(token(&next)));
        }
    }
}

#[tokio::test]
async fn a_spent_token_after_the_grace_window_is_reuse_and_ends_the_family() {
    let app = common::spawn_app().await;
    let (_browser, client, tokens) = signed_in_with_refresh_token(&app).await;
    let (_, second) = refresh(&app, &client, token(&tokens)).await;
    // The retry within the window: the same successor.
    let (status, retried) = refresh(&app, &client, token(&tokens)).await;
    assert_eq!(status, 200);
    assert_eq!(token(&retried), token(&second));
    // Eleven seconds later (the default window is 10 s).
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::SpentAt,
            Expr::value(Some(Utc::now() - chrono::Duration::seconds(11))),
        )
        .filter(refresh_token::Column::SpentAt.is_not_null())
        .exec(&app.state.db)
        .await
        .unwrap();
    let (status, body) = refresh(&app, &client, token(&tokens)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    assert_eq!(
        refresh(&app, &client, token(&second)).await.0,
        400,
        "the family is revoked"
    );
}

#[tokio::test]
async fn once_the_successor_is_used_the_old_token_is_reuse() {
    let app = common::spawn_app().await;
    let (_browser, client, tokens) = signed_in_with_refresh_token(&app).await;
    let (_, second) = refresh(&app, &client, token(&tokens)).await;
    let (_, third) = refresh(&app, &client, token(&second)).await;
    let (status, _) = refresh(&app, &client, token(&tokens)).await;
    assert_eq!(status, 400);
    assert_eq!(
        refresh(&app, &client, token(&third)).await.0,
        400,
        "the family is revoked"
    );
}

#[tokio::test]
async fn a_grace_of_zero_keeps_strict_reuse_detection() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REFRESH_REUSE_GRACE".into(), "0".into());
    })
    .await;
    let (_browser, client, tokens) = signed_in_with_refresh_token(&app).await;
    let (_, second) = refresh(&app, &client, token(&tokens)).await;
    assert_eq!(refresh(&app, &client, token(&tokens)).await.0, 400);
    assert_eq!(refresh(&app, &client, token(&second)).await.0, 400);
}
