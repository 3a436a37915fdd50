//! Password policy (NIST SP 800-63B §3.1.1.2: length, and a block list; no
//! composition rules) and argon2id hashing on the blocking pool.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use super::IdentityError;
use crate::config::Argon2Settings;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 1024;

/// The most common passwords of at least 12 characters in public breach corpora.
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456789123",
    "111111111111",
    "000000000000",
    "123123123123",
    "qwertyuiop123",
    "qwertyuiopas",
    "qwertyuiopasdf",
    "1q2w3e4r5t6y",
    "1q2w3e4r5t6y7u",
    "1qaz2wsx3edc",
    "1qaz2wsx3edc4rfv",
    "zaq12wsxcde3",
    "passwordpassword",
    "password1234",
    "password12345",
    "password123456",
    "passw0rd1234",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "welcome123456",
    "administrator",
    "administrator1",
    "adminadmin123",
    "changeme1234",
    "abcdefghijkl",
    "abcd1234abcd",
    "abc123abc123",
    "aaaaaaaaaaaa",
    "asdfghjkl123",
    "asdfasdfasdf",
    "qwertyqwerty",
    "qazwsxedcrfv",
    "football1234",
    "baseball1234",
    "superman1234",
    "trustno1trustno1",
    "monkey123456",
    "dragon123456",
    "sunshine1234",
    "princess1234",
    "starwars1234",
    "correcthorsebatterystaple",
    "thequickbrownfox",
    "mypassword123",
    "computer1234",
    "internet1234",
    "whatever1234",
    "p@ssw0rd1234",
    "p@ssword1234",
    "123qweasdzxc",
];

/// Checks a new password against the policy.
pub fn check_policy(password: &str) -> Result<(), IdentityError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(IdentityError::PasswordTooShort);
    }
    if length > MAX_LENGTH {
        return Err(IdentityError::PasswordTooLong);
    }
    let lowered = password.to_lowercase();
    if COMMON.contains(&lowered.as_str()) || lowered.chars().all(|c| lowered.starts_with(c)) {
        return Err(IdentityError::PasswordTooCommon);
    }
    Ok(())
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Valid {
        /// A new hash under the current parameters, when the stored one is weaker.
        rehashed: Option<String>,
    },
    Invalid,
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that do nothing but hash, one per core, for the life of the hasher.
/// Never the async workers; and not tokio's blocking pool either: it starts
/// threads on demand, and each new thread's malloc arena kept its own copy of
/// argon2's 19 MiB working memory (RSS passed 250 MiB under a sign-in burst).
/// A fixed set of threads bounds that to one copy per core, and the queue bounds
/// hashing to one per core at a time.
struct HashPool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashPool {
    fn new(threads: usize) -> Result<Self, IdentityError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("tessera-argon2-{n}"))
                .spawn(move || {
                    loop {
                        let next = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        let Ok(job) = next else {
                            return; // the hasher is gone
                        };
                        // A panicking job must not take the thread with it.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(|e| IdentityError::Hashing(e.to_string()))?;
        }
        Ok(Self { jobs })
    }
}

/// Argon2id hashing on a fixed pool of threads (see [`HashPool`]).
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    pool: Arc<HashPool>,
    /// Verified against for unknown accounts, so they cost the same time as known ones.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(settings: Argon2Settings) -> Result<Self, IdentityError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| IdentityError::Hashing(e.to_string()))?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let dummy_hash = hash_blocking(&params, b"tessera dummy password for timing")?;
        Ok(Self {
            params,
            pool: Arc::new(HashPool::new(cores)?),
            dummy_hash: Arc::from(dummy_hash),
        })
    }

    /// Hashes `password` into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, IdentityError> {
        let params = self.params.clone();
        let password = password.as_bytes().to_vec();
        self.run(move || hash_blocking(&params, &password)).await?
    }

    /// Verifies `password` against `stored`; with `None` (no such account, or no
    /// password on it) a dummy hash is verified instead and the answer is `Invalid`.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, IdentityError> {
        let params = self.params.clone();
        let password = password.as_bytes().to_vec();
        let (phc, real) = match stored {
            Some(s) => (s.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Ok(Verified::Invalid);
            };
            let ok = Argon2::default()
                .verify_password(&password, &parsed)
                .is_ok();
            if !(ok && real) {
                return Ok(Verified::Invalid);
            }
            let rehashed = if is_weaker(&parsed, &params) {
                Some(hash_blocking(&params, &password)?)
            } else {
                None
            };
            Ok(Verified::Valid { rehashed })
        })
        .await?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IdentityError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.pool
            .jobs
            .send(job)
            .map_err(|e| IdentityError::Hashing(e.to_string()))?;
        result
            .await
            .map_err(|_| IdentityError::Hashing("the hashing thread stopped".to_owned()))
    }
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, IdentityError> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| IdentityError::Hashing(e.to_string()))
}

/// A stored hash is weaker when it is not argon2id v19 or any cost is below ours.
fn is_weaker(stored: &PasswordHash, current: &Params) -> bool {
    if stored.algorithm.as_str() != "argon2id" || stored.version != Some(0x13) {
        return true;
    }
    match Params::try_from(stored) {
        Ok(p) => {
            p.m_cost() < current.m_cost()
                || p.t_cost() < current.t_cost()
                || p.p_cost() < current.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Settings = Argon2Settings {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn policy_is_length_and_block_list_only() {
        assert!(matches!(
            check_policy("short"),
            Err(IdentityError::PasswordTooShort)
        ));
        assert!(check_policy(&"x".repeat(1025)).is_err());
        assert!(matches!(
            check_policy("Password1234"),
            Err(IdentityError::PasswordTooCommon)
        ));
        assert!(matches!(
            check_policy("zzzzzzzzzzzzzz"),
            Err(IdentityError::PasswordTooCommon)
        ));
        // No composition rules: a long lowercase phrase is fine.
        assert!(check_policy("purple elephants dance").is_ok());
        // Length counts characters, not bytes.
        assert!(check_policy("ééééééabcdef").is_ok());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(FAST).unwrap();
        let phc = hasher.hash("purple elephants dance").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert_eq!(
            hasher
                .verify("purple elephants dance", Some(&phc))
                .await
                .unwrap(),
            Verified::Valid { rehashed: None }
        );
        assert_eq!(
            hasher
                .verify("purple elephants dancE", Some(&phc))
                .await
                .unwrap(),
            Verified::Invalid
        );
        assert_eq!(
            hasher.verify("anything", None).await.unwrap(),
            Verified::Invalid
        );
        assert_eq!(
            hasher.verify("anything", Some("not a phc")).await.unwrap(),
            Verified::Invalid
        );
    }

    #[test]
    fn unknown_accounts_cost_the_same_as_known_ones() {
        // The dummy hash verified for unknown emails uses the live parameters, so
        // a sign-in attempt takes as long whether or not the account exists.
        let hasher = PasswordHasher::new(Argon2Settings {
            memory_kib: 2048,
            iterations: 3,
            parallelism: 1,
        })
        .unwrap();
        assert!(
            hasher
                .dummy_hash
                .starts_with("$argon2id$v=19$m=2048,t=3,p=1$")
        );
    }

    #[tokio::test]
    async fn a_weaker_hash_is_rehashed_with_current_parameters_on_success() {
        let weak = PasswordHasher::new(FAST).unwrap();
        let phc = weak.hash("purple elephants dance").await.unwrap();
        let strong = PasswordHasher::new(Argon2Settings {
            memory_kib: 2048,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        let Verified::Valid {
            rehashed: Some(new),
        } = strong
            .verify("purple elephants dance", Some(&phc))
            .await
            .unwrap()
        else {
            panic!("expected a rehash");
        };
        assert!(new.starts_with("$argon2id$v=19$m=2048,t=2,p=1$"), "{new}");
        assert_eq!(
            strong.verify("wrong password!", Some(&phc)).await.unwrap(),
            Verified::Invalid
        );
    }
}
