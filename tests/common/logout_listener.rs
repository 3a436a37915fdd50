//! A client's back-channel logout endpoint, as the world runs it: its own
//! port, a real HTTP listener that keeps every `logout_token` it is POSTed and
//! answers with the status the test sets; it can go down and come back on the
//! same port.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct LogoutListener {
    pub port: u16,
    tokens: Arc<Mutex<Vec<String>>>,
    status: Arc<Mutex<u16>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LogoutListener {
    pub async fn start() -> Self {
        let mut listener = LogoutListener {
            port: super::free_port(),
            tokens: Arc::default(),
            status: Arc::new(Mutex::new(200)),
            task: None,
        };
        listener.resume().await;
        listener
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/backchannel-logout", self.port)
    }

    /// The status later requests get.
    pub fn answer_with(&self, status: u16) {
        *self.status.lock().unwrap() = status;
    }

    /// Stops listening: connections are refused until [`LogoutListener::resume`].
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    pub async fn resume(&mut self) {
        let socket = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(s) => break s,
                // The aborted accept loop may hold the port a moment longer.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (tokens, status) = (self.tokens.clone(), self.status.clone());
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut stream, _)) = socket.accept().await {
                let (tokens, status) = (tokens.clone(), status.clone());
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                        let text = String::from_utf8_lossy(&data);
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if body.len() >= length {
                                break;
                            }
                        }
                    }
                    let text = String::from_utf8_lossy(&data).into_owned();
                    if let Some((_, body)) = text.split_once("\r\n\r\n") {
                        let token = url::form_urlencoded::parse(body.as_bytes())
                            .find(|(k, _)| k == "logout_token")
                            .map(|(_, v)| v.into_owned());
                        if let Some(token) = token {
                            tokens.lock().unwrap().push(token);
                        }
                    }
                    let code = *status.lock().unwrap();
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\nCache-Control: no-store\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        }));
    }

    /// The logout tokens received so far.
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }

    /// Waits (at most 20 s) until `n` tokens arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..400 {
            let tokens = self.tokens();
            if tokens.len() >= n {
                return tokens;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} logout token(s), got {}", self.tokens().len());
    }
}

impl Drop for LogoutListener {
    fn drop(&mut self) {
        self.stop();
    }
}
