//! A real SMTP server for the mail tests: Debian's `aiosmtpd` (python3-aiosmtpd)
//! as its own process on a loopback port, saving what it receives into a
//! maildir the tests read. Missing aiosmtpd skips the test, except where
//! `TESSERA_TEST_REQUIRE_SMTP` says it must be there (CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const AIOSMTPD: &str = "/usr/bin/aiosmtpd";

pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// `None` (after saying why) when aiosmtpd is not installed here.
pub async fn start() -> Option<SmtpServer> {
    if !Path::new(AIOSMTPD).exists() {
        assert!(
            std::env::var_os("TESSERA_TEST_REQUIRE_SMTP").is_none(),
            "required but skipped: {AIOSMTPD} is missing (apt-get install python3-aiosmtpd)"
        );
        eprintln!("skipped: {AIOSMTPD} is missing (apt-get install python3-aiosmtpd)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = SmtpServer {
        port: super::free_port(),
        maildir: dir.path().join("maildir"),
        child: None,
        _dir: dir,
    };
    server.resume().await;
    Some(server)
}

impl SmtpServer {
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and maildir, and waits until it answers.
    pub async fn resume(&mut self) {
        let child = Command::new(AIOSMTPD)
            .args(["-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("aiosmtpd did not start on port {}", self.port);
    }

    /// Stops the server: connections are refused until [`SmtpServer::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message delivered so far.
    pub fn messages(&self) -> Vec<Message> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .map(|raw| Message { raw })
            .collect()
    }

    /// Waits (polling the maildir, at most 20 s) until `n` messages were delivered.
    pub async fn wait_for(&self, n: usize) -> Vec<Message> {
        for _ in 0..400 {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} message(s), got {}", self.messages().len());
    }

    /// The one message to `to` (waiting for it).
    pub async fn message_to(&self, to: &str, subject: &str) -> Message {
        for _ in 0..400 {
            if let Some(m) = self
                .messages()
                .into_iter()
                .find(|m| m.to() == to && m.subject() == subject)
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no message \"{subject}\" to {to}");
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A delivered message, as the server saved it.
#[derive(Debug, Clone)]
pub struct Message {
    pub raw: String,
}

impl Message {
    pub fn from_file(path: &Path) -> Self {
        Message {
            raw: std::fs::read_to_string(path).expect("read message"),
        }
    }

    /// A top-level header's value (unfolded).
    pub fn header(&self, name: &str) -> String {
        header_in(self.head(), name).unwrap_or_default()
    }

    fn head(&self) -> &str {
        let end = self
            .raw
            .find("\r\n\r\n")
            .or_else(|| self.raw.find("\n\n"))
            .unwrap_or(self.raw.len());
        &self.raw[..end]
    }

    pub fn to(&self) -> String {
        self.header("To")
    }

    pub fn subject(&self) -> String {
        self.header("Subject")
    }

    /// The decoded body of the part with this content type (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> Option<String> {
        let top_type = self.header("Content-Type");
        let boundary = top_type
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))?
            .trim_matches('"')
            .to_owned();
        let marker = format!("--{boundary}");
        for part in self.raw.split(&marker).skip(1) {
            let part = part.trim_start_matches(['\r', '\n']);
            let (head, body) = part
                .split_once("\r\n\r\n")
                .or_else(|| part.split_once("\n\n"))?;
            let kind = header_in(head, "Content-Type").unwrap_or_default();
            if !kind.starts_with(content_type) {
                continue;
            }
            let encoding = header_in(head, "Content-Transfer-Encoding")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let body = body.trim_end_matches(['\r', '\n']);
            return Some(match encoding.as_str() {
                "quoted-printable" => String::from_utf8(
                    quoted_printable::decode(body, quoted_printable::ParseMode::Robust)
                        .expect("quoted-printable"),
                )
                .expect("utf-8"),
                "base64" => {
                    use base64::Engine;
                    let joined: String = body.split_whitespace().collect();
                    String::from_utf8(
                        base64::engine::general_purpose::STANDARD
                            .decode(joined)
                            .expect("base64"),
                    )
                    .expect("utf-8")
                }
                _ => body.to_owned(),
            });
        }
        None
    }

    pub fn text(&self) -> String {
        self.part("text/plain").expect("a text/plain part")
    }

    /// The first link in the plain text that starts with `prefix` (an absolute URL).
    pub fn link(&self, prefix: &str) -> String {
        let text = self.text();
        let start = text
            .find(prefix)
            .unwrap_or_else(|| panic!("no link {prefix}… in:\n{text}"));
        text[start..]
            .split_whitespace()
            .next()
            .expect("a link")
            .to_owned()
    }
}

fn header_in(head: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in head.lines() {
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line.trim_end()),
            Some(_) => break,
            None => {
                if let Some((n, v)) = line.split_once(':')
                    && n.eq_ignore_ascii_case(name)
                {
                    value = Some(v.trim().to_owned());
                }
            }
        }
    }
    value
}

/// The messages the file outbox (the default transport) holds in `dir`.
pub fn outbox(dir: &Path) -> Vec<Message> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "eml").then(|| Message::from_file(&path))
        })
        .collect()
}

/// Waits (at most 20 s) for the outbox message to `to` with `subject`.
pub async fn outbox_message(app: &super::TestApp, to: &str, subject: &str) -> Message {
    let dir = PathBuf::from(&app.env["TESSERA_MAIL_DIR"]);
    for _ in 0..400 {
        if let Some(m) = outbox(&dir)
            .into_iter()
            .find(|m| m.to() == to && m.subject() == subject)
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no message \"{subject}\" to {to} in {}", dir.display());
}

/// How many outbox messages went to `to`.
pub fn outbox_count(app: &super::TestApp, to: &str) -> usize {
    outbox(Path::new(&app.env["TESSERA_MAIL_DIR"]))
        .iter()
        .filter(|m| m.to() == to)
        .count()
}

/// Follows the verification link the file outbox holds for `email`: the
/// address is verified afterwards.
pub async fn verify_address(app: &super::TestApp, email: &str) {
    let link = outbox_message(app, email, "Verify your email address")
        .await
        .link(&app.url("/email/verify/"));
    let page = app
        .client
        .get(&link)
        .send()
        .await
        .expect("verification link");
    assert_eq!(page.status(), 200, "verifying {email}");
}
