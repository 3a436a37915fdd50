//! The load driver of `bench/run.sh`: runs one scenario against a running server
//! for a fixed time at a fixed concurrency and prints one JSON line — operations
//! per second, p50/p99 latency, errors. A multi-step scenario (the code flow)
//! counts one operation per completed flow.
//!
//! ```text
//! loadgen --base http://127.0.0.1:8080 --scenario jwks --concurrency 32 --seconds 10 \
//!         [--client-id ID --client-secret S --email E --password P]
//!         [--cpu 'server=PID;db=postgres']
//! ```
//! With `--cpu`, it also reports the CPU time each named group of processes — a
//! list of pids, or every process with that command name, found at both ends of
//! the window — and the driver itself, as `load`, spent per operation during the
//! measured window: a cost that, unlike a rate, hardly depends on what else the
//! machine is doing.
//! Scenarios: hello, jwks, discovery, client_credentials, introspection, userinfo,
//! refresh_token, authorization_code, password_sign_in.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

#[derive(Clone)]
struct Config {
    base: String,
    scenario: String,
    concurrency: usize,
    seconds: u64,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    email: String,
    password: String,
    cpu_groups: Vec<(String, Processes)>,
}

/// Whose CPU time a group counts.
#[derive(Clone)]
enum Processes {
    Pids(Vec<u32>),
    /// Every process with this command name (PostgreSQL forks one per connection).
    Named(String),
}

fn config() -> Result<Config, String> {
    let mut args: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(key) = it.next() {
        let key = key
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {key}"))?
            .to_owned();
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        args.insert(key, value);
    }
    let get = |k: &str, default: &str| args.get(k).cloned().unwrap_or_else(|| default.to_owned());
    Ok(Config {
        base: get("base", "http://127.0.0.1:8080"),
        scenario: get("scenario", "jwks"),
        concurrency: get("concurrency", "32")
            .parse()
            .map_err(|_| "bad --concurrency")?,
        seconds: get("seconds", "10").parse().map_err(|_| "bad --seconds")?,
        client_id: get("client-id", ""),
        client_secret: get("client-secret", ""),
        redirect_uri: get("redirect-uri", "https://app.example/callback"),
        email: get("email", "bench@example.com"),
        password: get("password", "bench password 123"),
        cpu_groups: cpu_groups(&get("cpu", ""))?,
    })
}

/// `server=1;db=postgres` → [("server", Pids([1])), ("db", Named("postgres"))].
fn cpu_groups(spec: &str) -> Result<Vec<(String, Processes)>, String> {
    spec.split(';')
        .filter(|group| !group.is_empty())
        .map(|group| {
            let (name, who) = group
                .split_once('=')
                .ok_or_else(|| format!("bad --cpu group {group}"))?;
            let processes = if who.starts_with(|c: char| c.is_ascii_digit()) {
                Processes::Pids(
                    who.split(',')
                        .map(|p| p.parse().map_err(|_| format!("bad pid {p}")))
                        .collect::<Result<_, _>>()?,
                )
            } else {
                Processes::Named(who.to_owned())
            };
            Ok((name.to_owned(), processes))
        })
        .collect()
}

fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

/// User + system CPU time of a process so far, in clock ticks (Linux
/// `/proc/PID/stat` fields 14 and 15); 0 for a process that is gone.
fn cpu_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) is in parentheses and may hold spaces.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// CPU ticks per pid of each group, the driver's own last.
fn cpu_snapshot(groups: &[(String, Processes)]) -> Vec<HashMap<u32, u64>> {
    let mut snapshot: Vec<HashMap<u32, u64>> = groups
        .iter()
        .map(|(_, who)| {
            let pids = match who {
                Processes::Pids(pids) => pids.clone(),
                Processes::Named(name) => pids_named(name),
            };
            pids.into_iter()
                .map(|pid| (pid, cpu_ticks(&pid.to_string())))
                .collect()
        })
        .collect();
    snapshot.push(HashMap::from([(0, cpu_ticks("self"))]));
    snapshot
}

/// Ticks spent between two snapshots of one group; a process that appeared in
/// between counts from zero (it was born inside the window).
fn ticks_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, ticks)| ticks.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

type Failure = String;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(4)
        .build()
        .expect("client")
}

fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::now_v7().simple(),
        uuid::Uuid::now_v7().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn csrf_of(page: &str) -> Result<String, Failure> {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).ok_or("no csrf field")? + marker.len();
    let end = page[start..].find('"').ok_or("no closing quote")?;
    Ok(page[start..start + end].to_owned())
}

async fn sign_in(http: &reqwest::Client, c: &Config) -> Result<(), Failure> {
    let page = http
        .get(format!("{}/login?prompt=login", c.base))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let csrf = csrf_of(&page)?;
    let answer = http
        .post(format!("{}/login", c.base))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", c.email.as_str()),
            ("password", c.password.as_str()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if answer.status() != 303 {
        return Err(format!("sign-in answered {}", answer.status()));
    }
    Ok(())
}

/// authorize (a session exists, first-party client: straight back with a code)
/// then the code exchange; returns the token response.
async fn code_flow(
    http: &reqwest::Client,
    c: &Config,
    scope: &str,
) -> Result<serde_json::Value, Failure> {
    let (verifier, challenge) = pkce();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &c.client_id)
        .append_pair("redirect_uri", &c.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "s")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let answer = http
        .get(format!("{}/authorize?{query}", c.base))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let location = answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("authorize answered {} without a redirect", answer.status()))?;
    let code = url::Url::parse(location)
        .map_err(|e| e.to_string())?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| format!("no code in {location}"))?;
    let tokens = http
        .post(format!("{}/token", c.base))
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", c.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if tokens.status() != 200 {
        return Err(format!("token answered {}", tokens.status()));
    }
    tokens.json().await.map_err(|e| e.to_string())
}

async fn client_credentials(http: &reqwest::Client, c: &Config) -> Result<String, Failure> {
    let answer = http
        .post(format!("{}/token", c.base))
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if answer.status() != 200 {
        return Err(format!("token answered {}", answer.status()));
    }
    let body: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no access_token".to_owned())
}

async fn expect_ok(request: reqwest::RequestBuilder) -> Result<(), Failure> {
    let answer = request.send().await.map_err(|e| e.to_string())?;
    let status = answer.status();
    // Read the whole body: a server is not done until it has sent it.
    answer.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// What one worker keeps between operations.
enum State {
    Stateless,
    Bearer(String),
    Refresh(String),
}

async fn prepare(http: &reqwest::Client, c: &Config) -> Result<State, Failure> {
    match c.scenario.as_str() {
        "userinfo" => {
            sign_in(http, c).await?;
            let tokens = code_flow(http, c, "openid email").await?;
            Ok(State::Bearer(
                tokens["access_token"]
                    .as_str()
                    .ok_or("no access_token")?
                    .to_owned(),
            ))
        }
        "introspection" => Ok(State::Bearer(client_credentials(http, c).await?)),
        "refresh_token" => {
            sign_in(http, c).await?;
            let tokens = code_flow(http, c, "openid offline_access").await?;
            Ok(State::Refresh(
                tokens["refresh_token"]
                    .as_str()
                    .ok_or("no refresh_token")?
                    .to_owned(),
            ))
        }
        "authorization_code" => {
            sign_in(http, c).await?;
            Ok(State::Stateless)
        }
        _ => Ok(State::Stateless),
    }
}

async fn operation(http: &reqwest::Client, c: &Config, state: &mut State) -> Result<(), Failure> {
    let base = &c.base;
    match (c.scenario.as_str(), state) {
        ("hello", _) => expect_ok(http.get(format!("{base}/"))).await,
        ("jwks", _) => expect_ok(http.get(format!("{base}/.well-known/jwks.json"))).await,
        ("discovery", _) => {
            expect_ok(http.get(format!("{base}/.well-known/openid-configuration"))).await
        }
        ("client_credentials", _) => client_credentials(http, c).await.map(drop),
        ("introspection", State::Bearer(token)) => {
            let answer = http
                .post(format!("{base}/introspect"))
                .basic_auth(&c.client_id, Some(&c.client_secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let body: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
            if body["active"] == true {
                Ok(())
            } else {
                Err(format!("introspection said {body}"))
            }
        }
        ("userinfo", State::Bearer(token)) => {
            expect_ok(
                http.get(format!("{base}/userinfo"))
                    .bearer_auth(token.as_str()),
            )
            .await
        }
        ("refresh_token", State::Refresh(token)) => {
            let answer = http
                .post(format!("{base}/token"))
                .basic_auth(&c.client_id, Some(&c.client_secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                ])
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if answer.status() != 200 {
                return Err(format!("refresh answered {}", answer.status()));
            }
            let body: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
            // Rotation: the next refresh uses the token this one returned.
            *token = body["refresh_token"]
                .as_str()
                .ok_or("no rotated refresh_token")?
                .to_owned();
            Ok(())
        }
        ("authorization_code", _) => code_flow(http, c, "openid").await.map(drop),
        ("password_sign_in", _) => sign_in(http, c).await,
        (other, _) => Err(format!("unknown scenario {other}")),
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[at.min(sorted.len() - 1)]) / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let c = match config() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    // Workers set themselves up first (sign-in, first tokens); the clock starts
    // once all are ready.
    let ready = Arc::new(tokio::sync::Barrier::new(c.concurrency + 1));
    for _ in 0..c.concurrency {
        let (c, stop, errors, first_error, ready) = (
            Arc::clone(&c),
            Arc::clone(&stop),
            Arc::clone(&errors),
            Arc::clone(&first_error),
            Arc::clone(&ready),
        );
        tasks.push(tokio::spawn(async move {
            let http = http();
            let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
            let prepared = prepare(&http, &c).await;
            ready.wait().await;
            let mut state = match prepared {
                Ok(s) => s,
                Err(e) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                    return latencies;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match operation(&http, &c, &mut state).await {
                    Ok(()) => latencies
                        .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        // A broken chain (refresh) cannot continue.
                        if matches!(state, State::Refresh(_)) {
                            break;
                        }
                    }
                }
            }
            latencies
        }));
    }
    ready.wait().await;
    let cpu_before = cpu_snapshot(&c.cpu_groups);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(c.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed_at_stop = started.elapsed();
    let cpu_after = cpu_snapshot(&c.cpu_groups);
    let mut all: Vec<u32> = Vec::new();
    for task in tasks {
        if let Ok(l) = task.await {
            all.extend(l);
        }
    }
    all.sort_unstable();
    // Ticks are USER_HZ, 100 per second on every Linux this runs on.
    let names = c
        .cpu_groups
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(["load"]);
    let cpu_us_per_op: serde_json::Map<String, serde_json::Value> = names
        .zip(cpu_after.iter().zip(&cpu_before))
        .map(|(name, (after, before))| {
            let ticks = ticks_between(before, after);
            let us = ticks as f64 * 10_000.0 / all.len().max(1) as f64;
            (name.to_owned(), serde_json::json!(us))
        })
        .collect();
    let out = serde_json::json!({
        "cpu_us_per_op": cpu_us_per_op,
        "scenario": c.scenario,
        "concurrency": c.concurrency,
        "seconds": elapsed_at_stop.as_secs_f64(),
        "ops": all.len(),
        "ops_per_sec": all.len() as f64 / elapsed_at_stop.as_secs_f64(),
        "p50_ms": percentile(&all, 0.50),
        "p99_ms": percentile(&all, 0.99),
        "errors": errors.load(Ordering::Relaxed),
        "first_error": *first_error.lock().unwrap_or_else(|p| p.into_inner()),
    });
    println!("{out}");
}
