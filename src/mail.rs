//! Outbound mail: letters composed from templates (plain text + HTML, the same
//! look as the pages), written into the job queue in the caller's transaction,
//! and delivered by the worker over SMTP — or, with no `TESSERA_SMTP_URL`, as
//! `.eml` files in `TESSERA_MAIL_DIR` so a local trial works end to end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{MailSettings, Settings};
use crate::jobs::{self, Claimed, Failure, Queue};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("cannot compose a message: {0}")]
    Compose(String),
}

/// One message a person gets; its words live in [`Letter::content`].
#[derive(Debug, Clone)]
pub enum Letter {
    /// After sign-up, or when asked again from `/account`.
    VerifyEmail { link: String },
    /// To the new address of an email change: following it makes the change.
    ConfirmNewEmail { link: String },
    /// An invitation to join an organization with a role.
    Invitation {
        organization: String,
        role: String,
        link: String,
    },
    /// "Forgot password?"; a passkey-only account is told it has none and
    /// offered to set one.
    ResetPassword { link: String, has_password: bool },
    /// Something changed about how the account is reached; `account` is the
    /// account page's URL (where the person reviews and acts).
    Notice { notice: Notice, account: String },
}

/// A security notice: what happened, told to the account's address (for an
/// address change, to the old one).
#[derive(Debug, Clone)]
pub enum Notice {
    PasswordChanged,
    /// A passkey-only account got its first password.
    PasswordAdded,
    PasswordReset,
    PasskeyAdded {
        name: String,
    },
    PasskeyRemoved {
        name: String,
    },
    EmailChanged {
        new_address: String,
    },
    /// A sign-in from a browser this account had not used before.
    NewSignIn {
        device: String,
        ip: String,
        when: String,
    },
}

impl Notice {
    fn subject_and_line(&self) -> (&'static str, String) {
        match self {
            Notice::PasswordChanged => (
                "Your password was changed",
                "The password of your account was changed.".into(),
            ),
            Notice::PasswordAdded => (
                "A password was added to your account",
                "Your account, which signed in with passkeys only, now also has a password."
                    .into(),
            ),
            Notice::PasswordReset => (
                "Your password was reset",
                "The password of your account was reset through a link mailed here, and every other session was signed out."
                    .into(),
            ),
            Notice::PasskeyAdded { name } => (
                "A passkey was added to your account",
                format!("A passkey named \"{name}\" can now sign in to your account."),
            ),
            Notice::PasskeyRemoved { name } => (
                "A passkey was removed from your account",
                format!("The passkey named \"{name}\" can no longer sign in to your account."),
            ),
            Notice::EmailChanged { new_address } => (
                "Your email address was changed",
                format!(
                    "Your account's email address was changed to {new_address}. This address no longer signs in."
                ),
            ),
            Notice::NewSignIn { device, ip, when } => (
                "New sign-in to your account",
                format!("Your account was signed in to from {device} ({ip}) at {when}, a browser it had not used before."),
            ),
        }
    }
}

/// What a letter says, laid out by `templates/mail/message.{txt,html}`.
struct Content {
    subject: String,
    lines: Vec<String>,
    action: Option<(String, String)>,
    after: Vec<String>,
}

impl Letter {
    fn content(&self) -> Content {
        match self {
            Letter::VerifyEmail { link } => Content {
                subject: "Verify your email address".into(),
                lines: vec![
                    "Confirm that this address belongs to you by following the link below.".into(),
                ],
                action: Some(("Verify email".into(), link.clone())),
                after: vec![
                    "The link works once, for 24 hours.".into(),
                    "If you did not create an account, ignore this message.".into(),
                ],
            },
            Letter::ConfirmNewEmail { link } => Content {
                subject: "Confirm your new email address".into(),
                lines: vec![
                    "You asked to use this address for your account. Confirm it by following the link below; until then your account keeps its old address."
                        .into(),
                ],
                action: Some(("Confirm new address".into(), link.clone())),
                after: vec![
                    "The link works once, for 24 hours.".into(),
                    "If you did not ask for this, ignore this message: nothing changes.".into(),
                ],
            },
            Letter::Invitation {
                organization,
                role,
                link,
            } => Content {
                subject: format!("You are invited to join {organization}"),
                lines: vec![format!(
                    "You are invited to join the organization {organization} as {role}."
                ),
                "Follow the link below, sign in (or create an account) with this address, and accept."
                    .into()],
                action: Some(("Open the invitation".into(), link.clone())),
                after: vec![
                    "The link works once, for 7 days.".into(),
                    "If you do not know this organization, ignore this message.".into(),
                ],
            },
            Letter::ResetPassword { link, has_password } => {
                let (lines, label) = if *has_password {
                    (
                        vec![
                            "Someone, hopefully you, asked to reset the password of your account."
                                .into(),
                            "Choose a new password by following the link below.".into(),
                        ],
                        "Set a new password",
                    )
                } else {
                    (
                        vec![
                            "Someone, hopefully you, asked to reset the password of your account. It has no password: it signs in with passkeys, on any device that holds one."
                                .into(),
                            "If you no longer have a passkey, set a password by following the link below."
                                .into(),
                        ],
                        "Set a password",
                    )
                };
                Content {
                    subject: "Reset your password".into(),
                    lines,
                    action: Some((label.into(), link.clone())),
                    after: vec![
                        "The link works once, for 30 minutes; a newer one replaces it. Using it signs you out everywhere else."
                            .into(),
                        "If you did not ask for this, ignore this message: nothing changes.".into(),
                    ],
                }
            }
            Letter::Notice { notice, account } => {
                let (subject, line) = notice.subject_and_line();
                Content {
                    subject: subject.into(),
                    lines: vec![line],
                    action: Some(("Review your account".into(), account.clone())),
                    after: vec![
                        "If this was you, there is nothing to do.".into(),
                        "If it was not, reset your password from the sign-in page and use \"Sign out everywhere\" on your account page."
                            .into(),
                    ],
                }
            }
        }
    }
}

#[derive(Template)]
#[template(path = "mail/message.txt")]
struct TextBody<'a> {
    c: &'a Content,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "mail/message.html")]
struct HtmlBody<'a> {
    c: &'a Content,
    site: &'a str,
}

/// A mail job's payload. `body` (the whole message, which may carry a link) is
/// dropped from the row once the job ends.
#[derive(Debug, Serialize, Deserialize)]
struct MailJob {
    from: String,
    to: String,
    subject: String,
    body: String,
}

/// Composes letters and queues them. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<MailerInner>,
}

struct MailerInner {
    from: Mailbox,
    site: String,
    host: String,
    issuer: String,
    queue: Queue,
}

impl Mailer {
    pub fn new(settings: &Settings, queue: Queue) -> Result<Self, String> {
        let from: Mailbox = settings
            .mail
            .from
            .parse()
            .map_err(|e| format!("TESSERA_MAIL_FROM: {e}"))?;
        let host = settings.issuer.host_str().unwrap_or("localhost").to_owned();
        Ok(Self {
            inner: Arc::new(MailerInner {
                from,
                site: host.clone(),
                host,
                issuer: settings.issuer_str().to_owned(),
                queue,
            }),
        })
    }

    /// An absolute link under the issuer.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.inner.issuer)
    }

    /// Composes `letter` for `to` and writes it as a job in `db` — the caller's
    /// transaction. Call [`Mailer::wake`] once that commits.
    pub async fn enqueue<C: ConnectionTrait>(
        &self,
        db: &C,
        to: &str,
        letter: &Letter,
    ) -> Result<(), MailError> {
        let job = self.compose(to, letter)?;
        let payload = serde_json::to_value(&job).map_err(|e| MailError::Compose(e.to_string()))?;
        jobs::enqueue(db, jobs::MAIL, &payload).await?;
        Ok(())
    }

    /// Queues a security notice to `to` in `db` (the caller's transaction).
    pub async fn notice<C: ConnectionTrait>(
        &self,
        db: &C,
        to: &str,
        notice: Notice,
    ) -> Result<(), MailError> {
        let letter = Letter::Notice {
            notice,
            account: self.link("/account"),
        };
        self.enqueue(db, to, &letter).await
    }

    /// Tells this instance's worker there is mail to send.
    pub fn wake(&self) {
        self.inner.queue.wake();
    }

    fn compose(&self, to: &str, letter: &Letter) -> Result<MailJob, MailError> {
        let bad = |e: &dyn std::fmt::Display| MailError::Compose(e.to_string());
        let content = letter.content();
        let site = self.inner.site.as_str();
        let text = TextBody { c: &content, site }
            .render()
            .map_err(|e| bad(&e))?;
        let html = HtmlBody { c: &content, site }
            .render()
            .map_err(|e| bad(&e))?;
        let to_address: Address = to.parse().map_err(|e| bad(&e))?;
        let message = lettre::Message::builder()
            .from(self.inner.from.clone())
            .to(Mailbox::new(None, to_address))
            .subject(content.subject.clone())
            .message_id(Some(format!(
                "<{}@{}>",
                Uuid::now_v7().simple(),
                self.inner.host
            )))
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| bad(&e))?;
        // Bodies are 7-bit (quoted-printable or base64), so the message is ASCII.
        let body = String::from_utf8(message.formatted()).map_err(|e| bad(&e))?;
        Ok(MailJob {
            from: self.inner.from.email.to_string(),
            to: to.to_owned(),
            subject: content.subject,
            body,
        })
    }
}

/// Where mail goes: an SMTP server, or `.eml` files in a directory.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// Per SMTP command; well under the job lease, so a claimed job is never
/// delivered twice by two instances.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

impl Transport {
    pub fn from_settings(settings: &MailSettings) -> Result<Self, String> {
        let Some(url) = &settings.smtp_url else {
            return Ok(Transport::Outbox(settings.dir.clone()));
        };
        let problem = |e: &dyn std::fmt::Display| format!("TESSERA_SMTP_URL: {e}");
        let parsed = url::Url::parse(url.expose()).map_err(|e| problem(&e))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let tls = TlsParameters::new(host.clone()).map_err(|e| problem(&e))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host);
        builder = match parsed.scheme() {
            // Implicit TLS (RFC 8314).
            "smtps" => builder
                .port(parsed.port().unwrap_or(465))
                .tls(Tls::Wrapper(tls)),
            // STARTTLS when the server offers it; plain for loopback catchers.
            _ => builder
                .port(parsed.port().unwrap_or(25))
                .tls(Tls::Opportunistic(tls)),
        };
        if !parsed.username().is_empty() {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            builder = builder.credentials(Credentials::new(
                decode(parsed.username()),
                decode(parsed.password().unwrap_or_default()),
            ));
        }
        Ok(Transport::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build()))
    }

    /// `smtp` or `file outbox`, for the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(_) => "smtp".into(),
            Transport::Outbox(dir) => format!("file outbox {}", dir.display()),
        }
    }

    /// Delivers one mail job (the worker calls this through `Deliveries`).
    pub async fn send(&self, job: &Claimed) -> Result<(), Failure> {
        let mail: MailJob = serde_json::from_str(&job.payload)
            .map_err(|e| Failure::Permanent(format!("malformed mail job: {e}")))?;
        match self {
            Transport::Smtp(smtp) => {
                let from: Address = mail
                    .from
                    .parse()
                    .map_err(|e| Failure::Permanent(format!("sender: {e}")))?;
                let to: Address = mail
                    .to
                    .parse()
                    .map_err(|e| Failure::Permanent(format!("recipient: {e}")))?;
                let envelope = lettre::address::Envelope::new(Some(from), vec![to])
                    .map_err(|e| Failure::Permanent(e.to_string()))?;
                smtp.send_raw(&envelope, mail.body.as_bytes())
                    .await
                    .map(drop)
                    .map_err(|e| {
                        if e.is_permanent() {
                            Failure::Permanent(e.to_string())
                        } else {
                            Failure::Temporary(e.to_string())
                        }
                    })
            }
            Transport::Outbox(dir) => {
                let name = format!("{}.eml", job.id);
                let path = dir.join(&name);
                write_atomically(dir, &path, mail.body.as_bytes())
                    .await
                    .map_err(|e| Failure::Temporary(format!("{}: {e}", path.display())))?;
                // The path, not the links: a log must never carry a secret link
                // (anyone who reads logs could use it); the file holds it.
                tracing::info!(path = %path.display(), subject = %mail.subject, "mail written to the outbox");
                Ok(())
            }
        }
    }
}

/// Written beside, then renamed: a reader never sees half a message.
async fn write_atomically(
    dir: &std::path::Path,
    path: &std::path::Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let partial = path.with_extension("eml.partial");
    tokio::fs::write(&partial, bytes).await?;
    tokio::fs::rename(&partial, path).await
}
