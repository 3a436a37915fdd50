//! The ceiling `bench/run.sh` measures against: the smallest actix-web server, on
//! the same worker count and the same loopback, answering `GET /` with a fixed body.
//!
//! ```text
//! hello 127.0.0.1:8099 1
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    HttpServer::new(|| {
        App::new().route(
            "/",
            web::get().to(|| async { HttpResponse::Ok().body("hello") }),
        )
    })
    .workers(workers)
    .bind(bind)?
    .run()
    .await
}
