//! One real Tessera server per fuzzing process (SQLite in a temporary directory,
//! in-process cache, open registration), started on first use, and a raw HTTP/1.1
//! client: a target sends bytes the way a hostile peer would and treats anything
//! but a 4xx/2xx/3xx answer — a 5xx, a dropped connection (a panicking handler),
//! no answer — as a crash for libFuzzer to keep.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

pub struct Server {
    pub addr: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
    pub runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let env = HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}?mode=rwc", dir.path().join("fuzz.db").display()),
        ),
        (
            "TESSERA_KEYS_DIR".to_owned(),
            dir.path().join("keys").display().to_string(),
        ),
        ("TESSERA_ISSUER".to_owned(), format!("http://{addr}")),
        ("TESSERA_BIND".to_owned(), addr.to_string()),
        ("TESSERA_WORKERS".to_owned(), "1".to_owned()),
        ("TESSERA_REGISTRATION".to_owned(), "open".to_owned()),
        (
            "TESSERA_REGISTRATION_MAX_PER_IP".to_owned(),
            "100000".to_owned(),
        ),
        (
            "TESSERA_LOGIN_MAX_FAILURES_PER_IP".to_owned(),
            "100000".to_owned(),
        ),
        ("TESSERA_ARGON2_MEMORY_KIB".to_owned(), "1024".to_owned()),
        ("TESSERA_ARGON2_ITERATIONS".to_owned(), "1".to_owned()),
    ]);
    let settings = tessera::Settings::from_sources(tessera::config::Sources {
        config_file: None,
        env,
        cli: tessera::config::CliOverrides::default(),
    })
    .expect("settings");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (client_id, client_secret) = runtime.block_on(async {
        let state = tessera::start(settings).await.expect("server starts");
        let new = tessera::oauth::clients::NewClient {
            name: "Fuzz".into(),
            redirect_uris: vec!["https://app.example/callback".into()],
            grant_types: vec![
                "authorization_code".into(),
                "refresh_token".into(),
                "client_credentials".into(),
            ],
            scope: "openid profile email offline_access".into(),
            ..Default::default()
        };
        let (client, secret) = tessera::oauth::clients::create(&state.db, new)
            .await
            .expect("client");
        let running = tessera::serve(state, listener).expect("serve");
        tokio::spawn(running.server);
        // The key ring's refresher lives as long as the process.
        std::mem::forget(running.refresher);
        (client.client_id, secret.expect("confidential"))
    });
    Server {
        addr,
        client_id,
        client_secret,
        runtime,
        _dir: dir,
    }
}

/// Sends one raw request (a fresh connection, `Connection: close`) and returns the
/// status; panics — a crash libFuzzer keeps — on a 5xx or no answer.
pub fn send(head: &str, body: &[u8]) -> u16 {
    let server = server();
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = Vec::with_capacity(head.len() + body.len() + 128);
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(
        format!(
            "Host: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    stream.write_all(&request).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let status = answer
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&answer)));
    assert!(
        status < 500,
        "server error {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    status
}

/// Percent-encodes every byte a request target cannot carry raw, keeping `&`, `=`
/// and `%` so the fuzzer still shapes parameters and escapes.
pub fn query_from(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 3);
    for &b in data {
        if b.is_ascii_alphanumeric() || b"&=%-._~+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
