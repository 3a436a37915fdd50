//! A second Tessera, as its own `tessera serve` process, playing the upstream
//! identity provider (Google, Microsoft…) for the server under test: a real
//! OpenID provider with discovery, JWKS and code + PKCE, on its own database.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Backing, PASSWORD, TestApp};

pub struct Upstream {
    pub base: String,
    env: HashMap<String, String>,
    child: Option<Child>,
    _backing: Backing,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Upstream {
    /// Starts the provider and waits until it is ready.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`Self::start`] with extra settings for the provider.
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let backing = Backing::new().await;
        let mut env = backing.env();
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let port = super::free_port();
        let base = format!("http://127.0.0.1:{port}");
        env.insert("TESSERA_BIND".into(), format!("127.0.0.1:{port}"));
        env.insert("TESSERA_ISSUER".into(), base.clone());
        let mut upstream = Self {
            base,
            env,
            child: None,
            _backing: backing,
        };
        upstream.run().await;
        upstream
    }

    async fn run(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the upstream tessera");
        self.child = Some(child);
        for _ in 0..300 {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.base)).await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the upstream tessera never became ready");
    }

    /// Stops the provider (it is unreachable until [`Self::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    /// The `tessera` command line against the provider's database and keys.
    pub fn cli(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tessera binary");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("the tessera binary");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A person with an account at the provider (address verified there).
    pub fn person(&self, email: &str) {
        self.cli(
            &["user", "create", "--email", email, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
    }

    /// A client at the provider: `(client_id, client_secret)` (the secret is
    /// empty for a public client). Extra `args` go to `client create`
    /// (`--first-party` skips the provider's consent page).
    pub fn client(&self, redirect_uri: &str, args: &[&str]) -> (String, String) {
        let mut all = vec![
            "client",
            "create",
            "--name",
            "Downstream",
            "--redirect-uri",
            redirect_uri,
            "--json",
        ];
        all.extend_from_slice(args);
        let out: serde_json::Value =
            serde_json::from_str(&self.cli(&all, "")).expect("client create prints JSON");
        (
            out["client_id"].as_str().expect("client_id").to_owned(),
            out["client_secret"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Registers `app` at this provider (a first-party client: no consent
    /// page) and adds this provider to `app` as `id`, with `extra` arguments
    /// for `provider add`.
    pub fn register_with(&self, app: &TestApp, id: &str, name: &str, extra: &[&str]) -> String {
        self.register_as(app, id, name, &["--first-party"], extra)
    }

    /// [`Self::register_with`] with `client_args` for the provider's client.
    pub fn register_as(
        &self,
        app: &TestApp,
        id: &str,
        name: &str,
        client_args: &[&str],
        extra: &[&str],
    ) -> String {
        let callback = format!("{}/federation/{id}/callback", app.base);
        let (client_id, secret) = self.client(&callback, client_args);
        let keys = app.keys_dir.display().to_string();
        let mut args = vec![
            "provider",
            "add",
            "--id",
            id,
            "--name",
            name,
            "--issuer",
            &self.base,
            "--client-id",
            &client_id,
            "--client-secret-stdin",
        ];
        args.extend_from_slice(extra);
        let (ok, _, err) = super::cli_input(
            app,
            &[("TESSERA_KEYS_DIR", &keys)],
            &args,
            &format!("{secret}\n"),
        );
        assert!(ok, "provider add: {err}");
        client_id
    }
}
