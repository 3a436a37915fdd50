//! Password policy (NIST SP 800-63B §3.1.1.2: length, and a block list; no
//! composition rules) and argon2id hashing on the blocking pool.

use std::sync::Arc;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// Argon2's working memory, owned by one hashing thread and reused by every hash it
/// computes. Letting argon2 allocate per hash left each thread's malloc arena holding
/// several 19 MiB copies (and, once the first was freed, raised glibc's mmap
/// threshold for every other large allocation); one long-lived buffer per thread is
/// allocated once and never freed. Argon2 overwrites every block in its first pass,
/// so nothing from an earlier hash reaches the next.
struct Scratch {
    blocks: Vec<Block>,
    /// The most blocks kept between hashes: what the configured parameters need.
    keep: usize,
}

impl Scratch {
    fn hash_into(
        &mut self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let needed = argon2.params().block_count();
        if needed > self.keep {
            // A stored hash dearer than the current settings: pay for it once and
            // keep nothing, so one odd record cannot pin more memory.
            let mut once = vec![Block::new(); needed];
            return argon2.hash_password_into_with_memory(password, salt, out, &mut once[..]);
        }
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::new());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut self.blocks[..needed])
    }

    /// Hashes `password` under `params` with a fresh random salt into a PHC string.
    fn hash(&mut self, params: &Params, password: &[u8]) -> Result<String, IdentityError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = Salt::generate();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.hash_into(&argon2, password, &salt, &mut out)
            .map_err(|e| IdentityError::Hashing(e.to_string()))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(params)
                .map_err(|e| IdentityError::Hashing(e.to_string()))?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|e| IdentityError::Hashing(e.to_string()))?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` produces `stored`'s output under `stored`'s own algorithm,
    /// version and parameters (compared in constant time by [`Output`]'s `PartialEq`).
    fn matches(&mut self, stored: &PasswordHash, password: &[u8]) -> bool {
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(stored.algorithm.as_str()),
            Params::try_from(stored),
        ) else {
            return false;
        };
        let version = match stored.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let mut out = [0u8; Output::MAX_LENGTH];
        let Some(out) = out.get_mut(..expected.len()) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params);
        if self.hash_into(&argon2, password, salt, out).is_err() {
            return false;
        }
        Output::new(out).is_ok_and(|computed| computed == *expected)
    }
}

/// Threads that do nothing but hash, one per core, for the life of the hasher.
/// Never the async workers; and not tokio's blocking pool either: it starts
/// threads on demand, and each new thread's malloc arena kept its own copy of
/// argon2's 19 MiB working memory (RSS passed 250 MiB under a sign-in burst).
/// A fixed set of threads bounds that to one [`Scratch`] per core, and the queue
/// bounds hashing to one per core at a time.
struct HashPool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashPool {
    fn new(threads: usize, keep_blocks: usize) -> Result<Self, IdentityError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("tessera-argon2-{n}"))
                .spawn(move || {
                    // Allocated by the first hash, not here: an idle server keeps none.
                    let mut scratch = Scratch {
                        blocks: Vec::new(),
                        keep: keep_blocks,
                    };
                    loop {
                        let next = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        let Ok(job) = next else {
                            return; // the hasher is gone
                        };
                        // A panicking job must not take the thread with it.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            job(&mut scratch)
                        }));
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
    /// Verified against for unknown accounts, so they cost the same time as known
    /// ones. Made by the first such sign-in, on a hashing thread, rather than at
    /// start-up: an idle server then holds no argon2 memory at all.
    dummy_hash: Arc<tokio::sync::OnceCell<Arc<str>>>,
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
        let keep_blocks = params.block_count();
        Ok(Self {
            params,
            pool: Arc::new(HashPool::new(cores, keep_blocks)?),
            dummy_hash: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// Hashes `password` into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, IdentityError> {
        let params = self.params.clone();
        let password = password.as_bytes().to_vec();
        self.run(move |scratch| scratch.hash(&params, &password))
            .await?
    }

    async fn dummy_hash(&self) -> Result<Arc<str>, IdentityError> {
        self.dummy_hash
            .get_or_try_init(|| async {
                self.hash("tessera dummy password for timing")
                    .await
                    .map(Arc::from)
            })
            .await
            .cloned()
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
            Some(s) => (Arc::from(s), true),
            None => (self.dummy_hash().await?, false),
        };
        self.run(move |scratch| {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Ok(Verified::Invalid);
            };
            if !(scratch.matches(&parsed, &password) && real) {
                return Ok(Verified::Invalid);
            }
            let rehashed = if is_weaker(&parsed, &params) {
                Some(scratch.hash(&params, &password)?)
            } else {
                None
            };
            Ok(Verified::Valid { rehashed })
        })
        .await?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T, IdentityError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |scratch| {
            let _ = done.send(work(scratch));
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

    #[tokio::test]
    async fn unknown_accounts_cost_the_same_as_known_ones() {
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
                .dummy_hash()
                .await
                .unwrap()
                .starts_with("$argon2id$v=19$m=2048,t=3,p=1$")
        );
    }

    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crates_own_phc_path_while_memory_is_reused() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        // One hashing thread, so every hash below reuses the same working memory.
        let params = Params::new(1024, 2, 1, None).unwrap();
        let pool = HashPool::new(1, params.block_count()).unwrap();
        let hasher = PasswordHasher {
            params: params.clone(),
            pool: Arc::new(pool),
            dummy_hash: Arc::new(tokio::sync::OnceCell::new()),
        };
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        for password in ["purple elephants dance", "green giraffes sing"] {
            let ours = hasher.hash(password).await.unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(
                reference
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            );
            assert!(
                reference
                    .verify_password(b"another password", &parsed)
                    .is_err()
            );

            let theirs = reference
                .hash_password(password.as_bytes())
                .unwrap()
                .to_string();
            assert_eq!(
                hasher.verify(password, Some(&theirs)).await.unwrap(),
                Verified::Valid { rehashed: None }
            );
            assert_eq!(
                hasher
                    .verify("another password", Some(&theirs))
                    .await
                    .unwrap(),
                Verified::Invalid
            );
        }
        // A stored hash dearer than the settings (more memory than the thread
        // keeps) still verifies, and is not "weaker", so it is left alone.
        let dearer = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 2, 1, None).unwrap(),
        )
        .hash_password(b"purple elephants dance")
        .unwrap()
        .to_string();
        assert_eq!(
            hasher
                .verify("purple elephants dance", Some(&dearer))
                .await
                .unwrap(),
            Verified::Valid { rehashed: None }
        );
        // argon2i and argon2d records from elsewhere verify too (and are rehashed).
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let legacy = Argon2::new(
                algorithm,
                Version::V0x13,
                Params::new(1024, 2, 1, None).unwrap(),
            )
            .hash_password(b"purple elephants dance")
            .unwrap()
            .to_string();
            let Verified::Valid {
                rehashed: Some(new),
            } = hasher
                .verify("purple elephants dance", Some(&legacy))
                .await
                .unwrap()
            else {
                panic!("{legacy} should verify and be rehashed");
            };
            assert!(new.starts_with("$argon2id$v=19$m=1024,t=2,p=1$"), "{new}");
        }
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
