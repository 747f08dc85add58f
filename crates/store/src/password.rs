//! Password schemes of the users file, compatible with Dovecot's
//! (<https://doc.dovecot.org/> "Password Schemes"): the password field is
//! `{SCHEME}data`, so one file serves Dovecot and Pillarbox.
//!
//! | scheme | data | what a login costs |
//! |---|---|---|
//! | `{ARGON2ID}` | PHC string `$argon2id$v=19$m=65536,t=3,p=1$salt$hash` | 64 MiB and ~0.1 s: the default for new passwords |
//! | `{SHA512-CRYPT}`, `{SHA256-CRYPT}` | `$6$[rounds=N$]salt$hash`, `$5$...` (Drepper's SHA-crypt) | 5000 rounds by default |
//! | `{BLF-CRYPT}` | bcrypt, `$2y$`/`$2b$`/`$2a$` | 2^cost rounds |
//! | `{SCRAM-SHA-256}` | `iterations,salt_b64,storedkey_b64,serverkey_b64` (RFC 5802 3, RFC 7677) | PBKDF2 iterations; allows SCRAM without the plaintext |
//! | `{CRAM-MD5}` | hex of the two HMAC-MD5 states after the ipad and opad blocks | cheap; allows CRAM-MD5 (RFC 2195) without the plaintext |
//! | `{PLAIN}` | the password itself | accepted so old files keep working; the caller logs a warning |
//!
//! Scheme names are case-insensitive, as in Dovecot. Verifying is CPU-bound and the
//! slow schemes are slow on purpose: the server calls [`StoredPassword::verify`] off
//! its async threads.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pillarbox_proto::sasl::{CramMd5Secret, ScramSecret};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A password scheme Pillarbox can verify and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// `{ARGON2ID}`: the default for new passwords.
    #[default]
    Argon2id,
    /// `{SHA512-CRYPT}`: `$6$`.
    Sha512Crypt,
    /// `{SHA256-CRYPT}`: `$5$`.
    Sha256Crypt,
    /// `{BLF-CRYPT}`: bcrypt.
    BlfCrypt,
    /// `{SCRAM-SHA-256}`: salted keys, usable by SASL SCRAM-SHA-256.
    ScramSha256,
    /// `{CRAM-MD5}`: HMAC-MD5 states, usable by SASL CRAM-MD5.
    CramMd5,
    /// `{PLAIN}`: the password in clear.
    Plain,
}

impl Scheme {
    /// Every scheme, the default first.
    pub const ALL: [Scheme; 7] = [
        Scheme::Argon2id,
        Scheme::Sha512Crypt,
        Scheme::Sha256Crypt,
        Scheme::BlfCrypt,
        Scheme::ScramSha256,
        Scheme::CramMd5,
        Scheme::Plain,
    ];

    /// Dovecot's name of the scheme, as written between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::ScramSha256 => "SCRAM-SHA-256",
            Scheme::CramMd5 => "CRAM-MD5",
            Scheme::Plain => "PLAIN",
        }
    }

    /// Finds a scheme by Dovecot's name, case-insensitively. Dovecot's aliases
    /// `HMAC-MD5` (CRAM-MD5) and `CLEAR`/`CLEARTEXT` (PLAIN) are accepted too.
    pub fn from_name(name: &str) -> Option<Scheme> {
        let upper = name.to_ascii_uppercase();
        let scheme = match upper.as_str() {
            "HMAC-MD5" => Scheme::CramMd5,
            "CLEAR" | "CLEARTEXT" => Scheme::Plain,
            other => return Scheme::ALL.into_iter().find(|s| s.name() == other),
        };
        Some(scheme)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = PasswordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::from_name(s).ok_or_else(|| PasswordError::UnknownScheme(s.to_string()))
    }
}

/// Why a password field cannot be used, or a password cannot be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The field is empty: the user is a mailbox only and cannot log in. Not a fault
    /// of the file.
    #[error("no password set")]
    NoPassword,
    /// The field does not start with `{SCHEME}` nor with a known crypt prefix.
    #[error("password field has no {{SCHEME}} prefix")]
    MissingScheme,
    /// A scheme Pillarbox does not know.
    #[error("unknown password scheme {0:?}")]
    UnknownScheme(String),
    /// The data after `{SCHEME}` is not in that scheme's format.
    #[error("malformed {scheme} password: {reason}")]
    Malformed {
        /// The scheme the field names.
        scheme: Scheme,
        /// What is wrong with the data.
        reason: String,
    },
    /// A `{PLAIN}` password that cannot be stored in the file as it is.
    #[error("a {{PLAIN}} password cannot contain ':', CR or LF")]
    UnstorablePlain,
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// The hashing library refused the input.
    #[error("hashing failed: {0}")]
    Hash(String),
}

fn malformed(scheme: Scheme, reason: impl Into<String>) -> PasswordError {
    PasswordError::Malformed {
        scheme,
        reason: reason.into(),
    }
}

/// A parsed password field of the users file.
///
/// `Debug` shows the scheme only: the field may be a plaintext password.
#[derive(Clone)]
pub struct StoredPassword {
    stored: Stored,
    /// Seed of the deterministic SCRAM salt for `{PLAIN}` passwords.
    user: Option<String>,
}

#[derive(Clone)]
enum Stored {
    /// The PHC string, checked at parse time.
    Argon2id(String),
    ShaCrypt(ShaCrypt),
    /// The bcrypt string, checked at parse time.
    BlfCrypt(String),
    Scram(ScramSecret),
    CramMd5([u8; 32]),
    Plain(String),
}

/// `$6$[rounds=N$]salt$hash` or `$5$...`.
#[derive(Clone)]
struct ShaCrypt {
    sha512: bool,
    /// As glibc uses it: clamped to 1000..=999999999.
    rounds: usize,
    salt: String,
    /// The crypt-base64 hash as written.
    hash: String,
}

/// Iterations of the PBKDF2 behind `{SCRAM-SHA-256}`: Dovecot's default, and
/// RFC 7677 4's minimum.
const SCRAM_ITERATIONS: u32 = 4096;
/// Salt bytes of new `{SCRAM-SHA-256}`, `{ARGON2ID}` and bcrypt hashes.
const SALT_LEN: usize = 16;
/// Argon2id cost of new hashes: Dovecot's own (`doveadm pw -s ARGON2ID`), which
/// libsodium, behind Dovecot's verifier, accepts.
const ARGON2_M_KIB: u32 = 65536;
const ARGON2_T: u32 = 3;
const ARGON2_P: u32 = 1;
/// bcrypt cost of new hashes (Dovecot's own default is 5, too cheap today).
const BCRYPT_COST: u32 = 12;
/// Characters of crypt's base64, used for SHA-crypt salts.
const CRYPT_B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// MD5's initial state (RFC 1321 3.3).
const MD5_IV: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

impl StoredPassword {
    /// Parses a password field: `{SCHEME}data`. An empty field is
    /// [`PasswordError::NoPassword`]: no login is possible. As Dovecot's `CRYPT`
    /// scheme does, a field without braces (or `{CRYPT}`) that starts with `$6$`,
    /// `$5$`, `$2y$`/`$2b$`/`$2a$` or `$argon2id$` is taken by its prefix.
    pub fn parse(field: &str) -> Result<Self, PasswordError> {
        if field.is_empty() {
            return Err(PasswordError::NoPassword);
        }
        let (scheme, data) = match field.strip_prefix('{') {
            Some(rest) => {
                let (name, data) = rest.split_once('}').ok_or(PasswordError::MissingScheme)?;
                if name.eq_ignore_ascii_case("CRYPT") {
                    (
                        crypt_prefix(data).ok_or(PasswordError::MissingScheme)?,
                        data,
                    )
                } else {
                    let scheme = Scheme::from_name(name)
                        .ok_or_else(|| PasswordError::UnknownScheme(name.to_string()))?;
                    (scheme, data)
                }
            }
            None => (
                crypt_prefix(field).ok_or(PasswordError::MissingScheme)?,
                field,
            ),
        };
        let stored = match scheme {
            Scheme::Argon2id => Stored::Argon2id(parse_argon2id(data)?),
            Scheme::Sha512Crypt => Stored::ShaCrypt(parse_sha_crypt(data, true)?),
            Scheme::Sha256Crypt => Stored::ShaCrypt(parse_sha_crypt(data, false)?),
            Scheme::BlfCrypt => Stored::BlfCrypt(parse_bcrypt(data)?),
            Scheme::ScramSha256 => Stored::Scram(parse_scram(data)?),
            Scheme::CramMd5 => Stored::CramMd5(parse_cram_md5(data)?),
            Scheme::Plain => Stored::Plain(data.to_string()),
        };
        Ok(StoredPassword { stored, user: None })
    }

    /// Names the user the password belongs to. Only `{PLAIN}` uses it: its SCRAM
    /// salt is derived from the name, so the same user always gets the same salt and
    /// different users different ones. [`crate::UserEntry::stored_password`] sets it.
    pub fn with_user(mut self, user: &str) -> Self {
        self.user = Some(user.to_lowercase());
        self
    }

    /// The scheme of the field.
    pub fn scheme(&self) -> Scheme {
        match &self.stored {
            Stored::Argon2id(_) => Scheme::Argon2id,
            Stored::ShaCrypt(c) if c.sha512 => Scheme::Sha512Crypt,
            Stored::ShaCrypt(_) => Scheme::Sha256Crypt,
            Stored::BlfCrypt(_) => Scheme::BlfCrypt,
            Stored::Scram(_) => Scheme::ScramSha256,
            Stored::CramMd5(_) => Scheme::CramMd5,
            Stored::Plain(_) => Scheme::Plain,
        }
    }

    /// True when `password` is the stored one. Digests are compared in constant
    /// time. Slow on purpose for the slow schemes: call it off the async threads.
    pub fn verify(&self, password: &str) -> bool {
        match &self.stored {
            Stored::Argon2id(phc) => verify_argon2id(phc, password),
            Stored::ShaCrypt(c) => c.verify(password),
            // Like Dovecot and libxcrypt, bcrypt looks at the first 72 bytes only.
            Stored::BlfCrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Stored::Scram(secret) => {
                let computed = scram_keys(password, &secret.salt, secret.iterations);
                let mut want = [0u8; 64];
                want[..32].copy_from_slice(&secret.stored_key);
                want[32..].copy_from_slice(&secret.server_key);
                let mut got = [0u8; 64];
                got[..32].copy_from_slice(&computed.stored_key);
                got[32..].copy_from_slice(&computed.server_key);
                want.ct_eq(&got).into()
            }
            Stored::CramMd5(states) => cram_md5_states(password).ct_eq(states).into(),
            // Digests of both, so the comparison does not tell the length either.
            Stored::Plain(plain) => Sha256::digest(plain.as_bytes())
                .ct_eq(&Sha256::digest(password.as_bytes()))
                .into(),
        }
    }

    /// What checking a login against this password costs, as a name: the
    /// scheme and its parameters (Argon2 memory, passes, lanes and version;
    /// SHA-crypt rounds; bcrypt cost; SCRAM iterations). Two passwords with
    /// the same cost take as long to check.
    pub fn cost(&self) -> String {
        match &self.stored {
            // `$argon2id$v=19$m=65536,t=3,p=1$salt$hash`: all but salt and hash.
            Stored::Argon2id(phc) => phc.rsplitn(3, '$').nth(2).unwrap_or_default().to_string(),
            Stored::ShaCrypt(c) => format!("${}$rounds={}", c.id(), c.rounds),
            Stored::BlfCrypt(h) => match h.parse::<bcrypt::HashParts>() {
                Ok(parts) => format!("$2y${:02}", parts.get_cost()),
                Err(_) => "$2y$".to_string(),
            },
            Stored::Scram(s) => format!("{{SCRAM-SHA-256}}{}", s.iterations),
            Stored::CramMd5(_) => "{CRAM-MD5}".to_string(),
            Stored::Plain(_) => "{PLAIN}".to_string(),
        }
    }

    /// A password no one knows, stored with this one's scheme and
    /// [`cost`](Self::cost): checking a login against it takes as long as
    /// against this one. `None` if the random source or the hash failed.
    pub fn decoy_like(&self) -> Option<StoredPassword> {
        let mut raw = [0u8; 32];
        random(&mut raw).ok()?;
        let secret = B64.encode(raw);
        let stored = match &self.stored {
            Stored::Argon2id(phc) => {
                let model = argon2::PasswordHash::new(phc).ok()?;
                let params = argon2::Params::try_from(&model).ok()?;
                let version = match model.version {
                    Some(v) => argon2::Version::try_from(v).ok()?,
                    None => argon2::Version::default(),
                };
                Stored::Argon2id(argon2id_with(&secret, params, version).ok()?)
            }
            Stored::ShaCrypt(c) => {
                let mut crypt = ShaCrypt {
                    sha512: c.sha512,
                    rounds: c.rounds,
                    salt: crypt_salt().ok()?,
                    hash: String::new(),
                };
                crypt.hash = crypt.compute(&secret).ok()?;
                Stored::ShaCrypt(crypt)
            }
            Stored::BlfCrypt(h) => {
                let cost = h.parse::<bcrypt::HashParts>().ok()?.get_cost();
                Stored::BlfCrypt(bcrypt_with(&secret, cost).ok()?)
            }
            Stored::Scram(s) => Stored::Scram(scram_with(&secret, s.iterations).ok()?),
            Stored::CramMd5(_) => Stored::CramMd5(cram_md5_states(&secret)),
            Stored::Plain(_) => Stored::Plain(secret),
        };
        Some(StoredPassword { stored, user: None })
    }

    /// The SCRAM-SHA-256 keys, from `{SCRAM-SHA-256}` or computed from `{PLAIN}`
    /// (4096 iterations, a salt derived from the user name given to
    /// [`StoredPassword::with_user`], or from the empty name when none was).
    /// `None` for the other schemes: a one-way hash cannot give SCRAM keys.
    pub fn scram_sha256(&self) -> Option<ScramSecret> {
        match &self.stored {
            Stored::Scram(secret) => Some(secret.clone()),
            Stored::Plain(plain) => {
                let user = self.user.as_deref().unwrap_or("");
                let digest = Sha256::digest(format!("pillarbox scram salt\0{user}").as_bytes());
                Some(scram_keys(plain, &digest[..SALT_LEN], SCRAM_ITERATIONS))
            }
            _ => None,
        }
    }

    /// The PBKDF2 iteration count of the SCRAM-SHA-256 keys
    /// [`scram_sha256`](Self::scram_sha256) gives, without computing them.
    pub fn scram_iterations(&self) -> Option<u32> {
        match &self.stored {
            Stored::Scram(secret) => Some(secret.iterations),
            Stored::Plain(_) => Some(SCRAM_ITERATIONS),
            _ => None,
        }
    }

    /// The HMAC-MD5 states for CRAM-MD5, from `{CRAM-MD5}` or computed from
    /// `{PLAIN}`. `None` for the other schemes.
    pub fn cram_md5(&self) -> Option<CramMd5Secret> {
        let states = match &self.stored {
            Stored::CramMd5(states) => *states,
            Stored::Plain(plain) => cram_md5_states(plain),
            _ => return None,
        };
        Some(cram_md5_secret(&states))
    }
}

impl fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredPassword")
            .field("scheme", &self.scheme())
            .finish_non_exhaustive()
    }
}

/// Hashes `password` for the users file: `{SCHEME}data`, with a fresh random salt
/// where the scheme has one. Every output is accepted by `doveadm pw -t`.
pub fn hash(scheme: Scheme, password: &str) -> Result<String, PasswordError> {
    let data = match scheme {
        Scheme::Argon2id => hash_argon2id(password)?,
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            let crypt = ShaCrypt {
                sha512: scheme == Scheme::Sha512Crypt,
                rounds: sha_crypt::ROUNDS_DEFAULT,
                salt: crypt_salt()?,
                hash: String::new(),
            };
            let hash = crypt.compute(password)?;
            format!("${}${}${hash}", crypt.id(), crypt.salt)
        }
        Scheme::BlfCrypt => bcrypt_with(password, BCRYPT_COST)?,
        Scheme::ScramSha256 => {
            let s = scram_with(password, SCRAM_ITERATIONS)?;
            format!(
                "{},{},{},{}",
                s.iterations,
                B64.encode(&s.salt),
                B64.encode(s.stored_key),
                B64.encode(s.server_key)
            )
        }
        Scheme::CramMd5 => cram_md5_states(password)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        Scheme::Plain => {
            if password.contains([':', '\r', '\n']) {
                return Err(PasswordError::UnstorablePlain);
            }
            password.to_string()
        }
    };
    Ok(format!("{{{}}}{data}", scheme.name()))
}

/// The scheme of a bare crypt string, by its prefix.
fn crypt_prefix(data: &str) -> Option<Scheme> {
    let scheme = if data.starts_with("$6$") {
        Scheme::Sha512Crypt
    } else if data.starts_with("$5$") {
        Scheme::Sha256Crypt
    } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| data.starts_with(p)) {
        Scheme::BlfCrypt
    } else if data.starts_with("$argon2id$") {
        Scheme::Argon2id
    } else {
        return None;
    };
    Some(scheme)
}

/// A stored password no one can log in with, hashed as `users add` hashes
/// (Argon2id at the default cost), made once per process on first use.
/// Checking a login against it takes as long as checking a real user's, so an
/// unknown user, or one without a password, is not told apart by how long the
/// `535` takes. `None` only if the system's random source failed.
pub fn decoy() -> Option<&'static StoredPassword> {
    static DECOY: std::sync::OnceLock<Option<StoredPassword>> = std::sync::OnceLock::new();
    DECOY
        .get_or_init(|| {
            let mut secret = [0u8; 32];
            random(&mut secret).ok()?;
            let field = hash(Scheme::Argon2id, &B64.encode(secret)).ok()?;
            StoredPassword::parse(&field).ok()
        })
        .as_ref()
}

/// The decoys a login for a name no one has (or one without a usable
/// password) is checked against, so that its `535` takes as long as a real
/// user's. One fixed decoy would not do when the users' hashes differ in cost
/// (SHA-crypt users imported next to Argon2 ones): every user whose hash
/// costs less, or more, than the decoy would be told apart by the time. So
/// each name gets the cost of one of the users, picked by a keyed hash of the
/// name: the same for every attempt with that name, and spread over the costs
/// as the users are. Each cost's decoy is made on first use.
pub struct Decoys {
    /// For each user with a usable password, in file order, its cost's index
    /// into `costs`.
    users: Vec<usize>,
    /// Each distinct cost.
    costs: Vec<Cost>,
}

/// One cost among the users: its [`StoredPassword::cost`], a user's password
/// as the model, and the decoy made like it on first use.
struct Cost {
    name: String,
    model: StoredPassword,
    decoy: std::sync::OnceLock<Option<StoredPassword>>,
}

impl Cost {
    /// The decoy, made (slowly) on the first call.
    fn decoy(&self) -> Option<&StoredPassword> {
        self.decoy.get_or_init(|| self.model.decoy_like()).as_ref()
    }
}

impl Decoys {
    /// The decoys for these users' passwords.
    pub fn new(passwords: impl IntoIterator<Item = StoredPassword>) -> Self {
        let mut users = Vec::new();
        let mut costs: Vec<Cost> = Vec::new();
        for model in passwords {
            let name = model.cost();
            let i = match costs.iter().position(|c| c.name == name) {
                Some(i) => i,
                None => {
                    costs.push(Cost {
                        name,
                        model,
                        decoy: std::sync::OnceLock::new(),
                    });
                    costs.len() - 1
                }
            };
            users.push(i);
        }
        Self { users, costs }
    }

    /// The decoy for `name` (`user@domain`, lower case), chosen with the
    /// process's secret `key`. Slow the first time for each cost (it is
    /// hashed then): call it off the async threads. Without users, the
    /// default-cost [`decoy`]; `None` only if the random source failed.
    pub fn for_name(&self, key: &[u8], name: &str) -> Option<&StoredPassword> {
        if self.users.is_empty() {
            return decoy();
        }
        let digest = Sha256::new()
            .chain_update(b"pillarbox auth decoy\0")
            .chain_update(key)
            .chain_update(b"\0")
            .chain_update(name.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // The modulo's bias is below 2^-40 for any users file.
        let pick = (u64::from_le_bytes(first) % self.users.len() as u64) as usize;
        match self.costs[self.users[pick]].decoy() {
            Some(d) => Some(d),
            None => decoy(),
        }
    }

    /// Makes every cost's decoy now (slow: one hash each), so that no login
    /// pays for it: the first for each cost would otherwise take about twice
    /// as long as the rest, telling that attempt apart.
    pub fn prepare(&self) {
        if self.users.is_empty() {
            let _ = decoy();
        }
        for cost in &self.costs {
            let _ = cost.decoy();
        }
    }

    /// Whether every cost's decoy is made.
    pub fn prepared(&self) -> bool {
        self.costs.iter().all(|c| c.decoy.get().is_some())
    }

    /// The distinct costs among the users (`cost()` of each).
    #[cfg(test)]
    fn costs(&self) -> Vec<&str> {
        self.costs.iter().map(|c| c.name.as_str()).collect()
    }
}

fn random(buf: &mut [u8]) -> Result<(), PasswordError> {
    getrandom::getrandom(buf).map_err(|e| PasswordError::Random(e.to_string()))
}

fn parse_argon2id(data: &str) -> Result<String, PasswordError> {
    let phc =
        argon2::PasswordHash::new(data).map_err(|e| malformed(Scheme::Argon2id, e.to_string()))?;
    if phc.algorithm != argon2::Algorithm::Argon2id.ident() {
        return Err(malformed(
            Scheme::Argon2id,
            format!("algorithm is {}, not argon2id", phc.algorithm),
        ));
    }
    if phc.hash.is_none() {
        return Err(malformed(Scheme::Argon2id, "no hash"));
    }
    argon2::Params::try_from(&phc).map_err(|e| malformed(Scheme::Argon2id, e.to_string()))?;
    Ok(data.to_string())
}

fn verify_argon2id(phc: &str, password: &str) -> bool {
    use argon2::PasswordVerifier as _;
    // Parsed at load time already; the parameters come from the string.
    argon2::PasswordHash::new(phc)
        .and_then(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h))
        .is_ok()
}

fn hash_argon2id(password: &str) -> Result<String, PasswordError> {
    let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(32))
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2id_with(password, params, argon2::Version::V0x13)
}

/// `password` hashed by Argon2id with these parameters and a fresh salt.
fn argon2id_with(
    password: &str,
    params: argon2::Params,
    version: argon2::Version,
) -> Result<String, PasswordError> {
    use argon2::PasswordHasher as _;
    let mut raw = [0u8; SALT_LEN];
    random(&mut raw)?;
    let salt = argon2::password_hash::SaltString::encode_b64(&raw)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, version, params);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// `password` hashed by bcrypt at `cost` with a fresh salt, written `$2y$`
/// as `doveadm pw -s BLF-CRYPT` writes it.
fn bcrypt_with(password: &str, cost: u32) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    random(&mut salt)?;
    bcrypt::hash_with_salt(password, cost, salt)
        .map(|h| h.format_for_version(bcrypt::Version::TwoY))
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// SCRAM-SHA-256 keys of `password` with `iterations` and a fresh salt.
fn scram_with(password: &str, iterations: u32) -> Result<ScramSecret, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    random(&mut salt)?;
    Ok(scram_keys(password, &salt, iterations))
}

/// A fresh SHA-crypt salt: 16 crypt-base64 characters.
fn crypt_salt() -> Result<String, PasswordError> {
    let mut raw = [0u8; SALT_LEN];
    random(&mut raw)?;
    Ok(raw
        .iter()
        .map(|b| char::from(CRYPT_B64[usize::from(b & 63)]))
        .collect())
}

fn parse_sha_crypt(data: &str, sha512: bool) -> Result<ShaCrypt, PasswordError> {
    let (scheme, id, hash_len) = if sha512 {
        (Scheme::Sha512Crypt, "6", 86)
    } else {
        (Scheme::Sha256Crypt, "5", 43)
    };
    let rest = data
        .strip_prefix('$')
        .and_then(|r| r.strip_prefix(id))
        .and_then(|r| r.strip_prefix('$'))
        .ok_or_else(|| malformed(scheme, format!("does not start with ${id}$")))?;
    let mut parts: Vec<&str> = rest.split('$').collect();
    // https://www.akkadia.org/drepper/SHA-crypt.txt: an optional rounds=N, then
    // the salt and the hash.
    let mut rounds = sha_crypt::ROUNDS_DEFAULT;
    if let Some(r) = parts.first().and_then(|p| p.strip_prefix("rounds=")) {
        let n: usize = r
            .parse()
            .map_err(|_| malformed(scheme, "rounds= is not a number"))?;
        // Out-of-range counts are clamped, not refused, by glibc.
        rounds = n.clamp(sha_crypt::ROUNDS_MIN, sha_crypt::ROUNDS_MAX);
        parts.remove(0);
    }
    let [salt, hash] = parts[..] else {
        return Err(malformed(scheme, "expected salt$hash"));
    };
    if hash.len() != hash_len || !hash.bytes().all(|b| CRYPT_B64.contains(&b)) {
        return Err(malformed(
            scheme,
            format!("hash is not {hash_len} crypt-base64 characters"),
        ));
    }
    Ok(ShaCrypt {
        sha512,
        rounds,
        salt: salt.to_string(),
        hash: hash.to_string(),
    })
}

impl ShaCrypt {
    fn id(&self) -> &'static str {
        if self.sha512 {
            "6"
        } else {
            "5"
        }
    }

    /// The crypt-base64 hash of `password` with this salt and rounds.
    fn compute(&self, password: &str) -> Result<String, PasswordError> {
        let err = |e: sha_crypt::CryptError| PasswordError::Hash(format!("{e:?}"));
        // The algorithm reads at most 16 salt characters.
        let salt = &self.salt.as_bytes()[..self.salt.len().min(16)];
        if self.sha512 {
            let params = sha_crypt::Sha512Params::new(self.rounds).map_err(err)?;
            sha_crypt::sha512_crypt_b64(password.as_bytes(), salt, &params).map_err(err)
        } else {
            let params = sha_crypt::Sha256Params::new(self.rounds).map_err(err)?;
            sha_crypt::sha256_crypt_b64(password.as_bytes(), salt, &params).map_err(err)
        }
    }

    fn verify(&self, password: &str) -> bool {
        match self.compute(password) {
            // Same length by construction (checked at parse time).
            Ok(computed) => computed.as_bytes().ct_eq(self.hash.as_bytes()).into(),
            Err(_) => false,
        }
    }
}

fn parse_bcrypt(data: &str) -> Result<String, PasswordError> {
    if !["$2y$", "$2b$", "$2a$"].iter().any(|p| data.starts_with(p)) {
        return Err(malformed(
            Scheme::BlfCrypt,
            "does not start with $2y$, $2b$ or $2a$",
        ));
    }
    data.parse::<bcrypt::HashParts>()
        .map_err(|e| malformed(Scheme::BlfCrypt, e.to_string()))?;
    Ok(data.to_string())
}

fn parse_scram(data: &str) -> Result<ScramSecret, PasswordError> {
    let bad = |reason: &str| malformed(Scheme::ScramSha256, reason);
    let parts: Vec<&str> = data.split(',').collect();
    let [iterations, salt, stored_key, server_key] = parts[..] else {
        return Err(bad("expected iterations,salt,storedkey,serverkey"));
    };
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| bad("iterations is not a number"))?;
    if iterations == 0 {
        return Err(bad("iterations is 0"));
    }
    let salt = B64.decode(salt).map_err(|_| bad("salt is not base64"))?;
    let key = |text: &str, what: &str| -> Result<[u8; 32], PasswordError> {
        B64.decode(text)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
            .ok_or_else(|| bad(&format!("{what} is not 32 bytes of base64")))
    };
    Ok(ScramSecret {
        iterations,
        salt,
        stored_key: key(stored_key, "stored key")?,
        server_key: key(server_key, "server key")?,
    })
}

/// RFC 5802 3: SaltedPassword = Hi(password, salt, i); StoredKey =
/// H(HMAC(SaltedPassword, "Client Key")); ServerKey = HMAC(SaltedPassword,
/// "Server Key"). Like Dovecot, the password is used as given (no SASLprep).
fn scram_keys(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let hmac = |msg: &[u8]| -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&salted).expect("HMAC takes a key of any length");
        mac.update(msg);
        mac.finalize().into_bytes().into()
    };
    let client_key = hmac(b"Client Key");
    ScramSecret {
        iterations,
        salt: salt.to_vec(),
        stored_key: Sha256::digest(client_key).into(),
        server_key: hmac(b"Server Key"),
    }
}

fn parse_cram_md5(data: &str) -> Result<[u8; 32], PasswordError> {
    let bad = || malformed(Scheme::CramMd5, "expected 64 hex digits");
    if data.len() != 64 || !data.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(data.as_bytes().chunks(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// RFC 2104 HMAC-MD5 with `password` as the key, stopped after the first block of
/// each hash: the outer state then the inner state, each word little-endian, as
/// Dovecot's `hmac_md5_get_cram_context` writes them.
fn cram_md5_states(password: &str) -> [u8; 32] {
    let mut key = [0u8; 64];
    if password.len() > 64 {
        // RFC 2104 2: a key longer than the block is hashed first.
        use md5::Digest as _;
        key[..16].copy_from_slice(&md5::Md5::digest(password.as_bytes()));
    } else {
        key[..password.len()].copy_from_slice(password.as_bytes());
    }
    let state = |pad: u8| {
        let block = key.map(|b| b ^ pad);
        let mut s = MD5_IV;
        md5::block_api::compress(&mut s, &[block]);
        s
    };
    let (inner, outer) = (state(0x36), state(0x5c));
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(outer.iter().chain(&inner)) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

fn cram_md5_secret(states: &[u8; 32]) -> CramMd5Secret {
    let mut words = [0u32; 8];
    for (word, chunk) in words.iter_mut().zip(states.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    CramMd5Secret {
        outer: [words[0], words[1], words[2], words[3]],
        inner: [words[4], words[5], words[6], words[7]],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by `doveadm pw -s <SCHEME> -p secret` (Dovecot 2.3.19.1).
    const DOVEADM_SECRET: [&str; 7] = [
        "{SHA512-CRYPT}$6$fkvIhYcL/ww8kkjG$tuuZZ1f4cgSmo7MtuqFcTWiF20lUt2buCOGi3BvNxpo.52PznYM5FXL.XAxO1r16IWcTQ0KY9KVHmXAdgYO1N1",
        "{SHA256-CRYPT}$5$VfwRbM58RbSacnWY$nu04ITNIawdiDhWFXBLKuaeWpDScTErzLWCApuff266",
        "{BLF-CRYPT}$2y$05$bHyL4YwQQL20RZ8RIMULCOkEu3tpQGy6KiWpbPbRY9R5D3FukOwmq",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$2RIZ/tB3V6b23wMPV7NjvQ$9HX8dE9DTW9F/IDR/XC7twvU6Cyi1u6lKHIdZfiox6I",
        "{SCRAM-SHA-256}4096,E2kDMY1qDO6uyiPE3hltTg==,3qD7sK/ZtcB2X7m2ayhWUIzeQw8oeZbzCoQ87jxQmnc=,omqc7Hc1I4drGu2Cr8FDWOKXj/TyGzvr2lRX8Y+FkJE=",
        "{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56",
        "{PLAIN}secret",
    ];

    #[test]
    fn doveadm_hashes_verify_the_right_password_only() {
        for (field, scheme) in DOVEADM_SECRET.iter().zip(Scheme::ALL_DOVEADM_ORDER) {
            let stored = StoredPassword::parse(field).unwrap_or_else(|e| panic!("{field}: {e}"));
            assert_eq!(stored.scheme(), scheme, "{field}");
            assert!(stored.verify("secret"), "{field}");
            assert!(!stored.verify("Secret"), "{field}");
            assert!(!stored.verify(""), "{field}");
            assert!(!stored.verify("secret "), "{field}");
        }
    }

    impl Scheme {
        const ALL_DOVEADM_ORDER: [Scheme; 7] = [
            Scheme::Sha512Crypt,
            Scheme::Sha256Crypt,
            Scheme::BlfCrypt,
            Scheme::Argon2id,
            Scheme::ScramSha256,
            Scheme::CramMd5,
            Scheme::Plain,
        ];
    }

    #[test]
    fn sha_crypt_with_explicit_rounds_verifies() {
        // `doveadm pw -s SHA512-CRYPT -r 10000 -p secret`, `-s SHA256-CRYPT -r 1000`.
        for field in [
            "{SHA512-CRYPT}$6$rounds=10000$R7KV7/aTDScRlkkw$eufYVUpboya6tSZGZGeZsifb8ZX/dl4TMrso34CuMhAhRslxuLwuUCC5BucVrpCxCns1p98PEmlh01z1tp0oy/",
            "{SHA256-CRYPT}$5$rounds=1000$hpIs467ksx2MNOEI$9eUKUf5dJkuUqxalU6brvy6vz7PZJJ7eJrv.8vj6pOA",
        ] {
            let stored = StoredPassword::parse(field).expect("parse");
            assert!(stored.verify("secret"), "{field}");
            assert!(!stored.verify("secret2"), "{field}");
        }
    }

    #[test]
    fn scheme_names_are_case_insensitive() {
        let field = DOVEADM_SECRET[0].replace("SHA512-CRYPT", "sha512-Crypt");
        assert!(StoredPassword::parse(&field)
            .expect("parse")
            .verify("secret"));
        assert!(StoredPassword::parse("{plain}secret")
            .expect("parse")
            .verify("secret"));
        assert_eq!("scram-sha-256".parse::<Scheme>(), Ok(Scheme::ScramSha256));
        assert_eq!(Scheme::from_name("hmac-md5"), Some(Scheme::CramMd5));
        assert_eq!(Scheme::from_name("Cleartext"), Some(Scheme::Plain));
        assert_eq!(Scheme::from_name("md5-crypt"), None);
    }

    #[test]
    fn bare_and_crypt_prefixed_hashes_are_taken_by_their_prefix() {
        let sha512 = DOVEADM_SECRET[0].trim_start_matches("{SHA512-CRYPT}");
        for field in [sha512.to_string(), format!("{{CRYPT}}{sha512}")] {
            let stored = StoredPassword::parse(&field).expect("parse");
            assert_eq!(stored.scheme(), Scheme::Sha512Crypt);
            assert!(stored.verify("secret"));
        }
        let bcrypt = DOVEADM_SECRET[2].trim_start_matches("{BLF-CRYPT}");
        assert_eq!(
            StoredPassword::parse(bcrypt).expect("parse").scheme(),
            Scheme::BlfCrypt
        );
    }

    #[test]
    fn empty_field_is_no_password() {
        assert_eq!(
            StoredPassword::parse("").err(),
            Some(PasswordError::NoPassword)
        );
    }

    #[test]
    fn broken_fields_are_refused_with_a_reason() {
        let cases = [
            ("secret", PasswordError::MissingScheme),
            ("{PLAIN", PasswordError::MissingScheme),
            ("{CRYPT}abcdefg", PasswordError::MissingScheme),
            (
                "{MD5-CRYPT}$1$x$y",
                PasswordError::UnknownScheme("MD5-CRYPT".into()),
            ),
        ];
        for (field, want) in cases {
            assert_eq!(StoredPassword::parse(field).err(), Some(want), "{field}");
        }
        for field in [
            "{SHA512-CRYPT}$5$salt$hash",
            "{SHA512-CRYPT}$6$salt$short",
            "{SHA512-CRYPT}$6$rounds=x$salt$hash",
            "{SHA256-CRYPT}$5$only",
            "{BLF-CRYPT}$2y$05$short",
            "{BLF-CRYPT}$6$salt$hash",
            "{ARGON2ID}$argon2i$v=19$m=65536,t=3,p=1$2RIZ/tB3V6b23wMPV7NjvQ$9HX8dE9DTW9F/IDR/XC7twvU6Cyi1u6lKHIdZfiox6I",
            "{ARGON2ID}not-phc",
            "{SCRAM-SHA-256}4096,salt",
            "{SCRAM-SHA-256}0,E2kDMY1qDO6uyiPE3hltTg==,3qD7sK/ZtcB2X7m2ayhWUIzeQw8oeZbzCoQ87jxQmnc=,omqc7Hc1I4drGu2Cr8FDWOKXj/TyGzvr2lRX8Y+FkJE=",
            "{SCRAM-SHA-256}4096,E2kDMY1qDO6uyiPE3hltTg==,AAAA,omqc7Hc1I4drGu2Cr8FDWOKXj/TyGzvr2lRX8Y+FkJE=",
            "{CRAM-MD5}cd3ba7de",
            "{CRAM-MD5}zz3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56",
        ] {
            match StoredPassword::parse(field) {
                Err(PasswordError::Malformed { .. }) => {}
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn hashes_we_write_verify_and_reparse() {
        for scheme in Scheme::ALL {
            let field = hash(scheme, "s3cret:with colon").or_else(|e| match scheme {
                Scheme::Plain => hash(scheme, "s3cret with space"),
                _ => Err(e),
            });
            let field = field.unwrap_or_else(|e| panic!("{scheme}: {e}"));
            assert!(
                field.starts_with(&format!("{{{}}}", scheme.name())),
                "{field}"
            );
            assert!(!field.contains(['\n', '\r']), "{field}");
            let stored = StoredPassword::parse(&field).expect("parse");
            assert_eq!(stored.scheme(), scheme);
            let right = if scheme == Scheme::Plain {
                "s3cret with space"
            } else {
                "s3cret:with colon"
            };
            assert!(stored.verify(right), "{field}");
            assert!(!stored.verify("wrong"), "{field}");
            // Only the password itself may contain a colon: the field must not.
            if scheme != Scheme::Plain {
                assert!(!field.contains(':'), "{field}");
            }
        }
    }

    #[test]
    fn new_hashes_use_dovecots_formats_and_fresh_salts() {
        let a = hash(Scheme::Argon2id, "pw").expect("hash");
        assert!(
            a.starts_with("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"),
            "{a}"
        );
        assert_ne!(a, hash(Scheme::Argon2id, "pw").expect("hash"));
        let s = hash(Scheme::Sha512Crypt, "pw").expect("hash");
        assert!(s.starts_with("{SHA512-CRYPT}$6$"), "{s}");
        assert_ne!(s, hash(Scheme::Sha512Crypt, "pw").expect("hash"));
        assert!(hash(Scheme::Sha256Crypt, "pw")
            .expect("hash")
            .starts_with("{SHA256-CRYPT}$5$"));
        assert!(hash(Scheme::BlfCrypt, "pw")
            .expect("hash")
            .starts_with("{BLF-CRYPT}$2y$12$"));
        let scram = hash(Scheme::ScramSha256, "pw").expect("hash");
        assert!(scram.starts_with("{SCRAM-SHA-256}4096,"), "{scram}");
        assert_ne!(scram, hash(Scheme::ScramSha256, "pw").expect("hash"));
        // CRAM-MD5 has no salt: the same password gives the same states.
        assert_eq!(
            hash(Scheme::CramMd5, "secret").expect("hash"),
            DOVEADM_SECRET[5]
        );
    }

    #[test]
    fn plain_password_with_a_colon_or_newline_cannot_be_stored() {
        for pw in ["a:b", "a\nb", "a\rb"] {
            assert_eq!(hash(Scheme::Plain, pw), Err(PasswordError::UnstorablePlain));
        }
    }

    #[test]
    fn scram_secret_comes_from_scram_field() {
        let stored = StoredPassword::parse(DOVEADM_SECRET[4]).expect("parse");
        let secret = stored.scram_sha256().expect("scram");
        assert_eq!(secret.iterations, 4096);
        assert_eq!(
            secret.salt,
            B64.decode("E2kDMY1qDO6uyiPE3hltTg==").expect("b64")
        );
        assert_eq!(secret, scram_keys("secret", &secret.salt, 4096));
        assert!(stored.cram_md5().is_none());
    }

    #[test]
    fn scram_secret_from_plain_is_stable_per_user_and_differs_between_users() {
        let alice = StoredPassword::parse("{PLAIN}secret")
            .expect("parse")
            .with_user("Alice@Example.test");
        let a1 = alice.scram_sha256().expect("scram");
        let a2 = alice.clone().scram_sha256().expect("scram");
        assert_eq!(a1, a2);
        assert_eq!(a1.iterations, 4096);
        assert_eq!(a1, scram_keys("secret", &a1.salt, 4096));
        let alice_lower = StoredPassword::parse("{PLAIN}secret")
            .expect("parse")
            .with_user("alice@example.test");
        assert_eq!(alice_lower.scram_sha256(), Some(a1.clone()));
        let bob = StoredPassword::parse("{PLAIN}secret")
            .expect("parse")
            .with_user("bob@example.test");
        assert_ne!(bob.scram_sha256().expect("scram").salt, a1.salt);
    }

    #[test]
    fn cram_md5_secret_matches_doveadm_and_plain() {
        let from_hash = StoredPassword::parse(DOVEADM_SECRET[5])
            .expect("parse")
            .cram_md5()
            .expect("cram");
        let from_plain = StoredPassword::parse("{PLAIN}secret")
            .expect("parse")
            .cram_md5()
            .expect("cram");
        assert_eq!(from_hash, from_plain);
        assert!(StoredPassword::parse(DOVEADM_SECRET[5])
            .expect("parse")
            .scram_sha256()
            .is_none());
    }

    #[test]
    fn cram_md5_states_finish_to_rfc2195_digest() {
        // RFC 2195 2: tim / tanstaaftanstaaf answers the challenge with
        // b913a602c7eda7a495b4e6e7334d3890.
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        let secret = cram_md5_secret(&cram_md5_states("tanstaaftanstaaf"));
        let finish = |state: [u32; 4], data: &[u8]| -> [u8; 16] {
            // One more block after the 64-byte pad block, with MD5 padding.
            let total_bits = ((64 + data.len()) as u64) * 8;
            let mut msg = data.to_vec();
            msg.push(0x80);
            while msg.len() % 64 != 56 {
                msg.push(0);
            }
            msg.extend_from_slice(&total_bits.to_le_bytes());
            let mut s = state;
            for block in msg.chunks_exact(64) {
                let mut b = [0u8; 64];
                b.copy_from_slice(block);
                md5::block_api::compress(&mut s, &[b]);
            }
            let mut out = [0u8; 16];
            for (c, w) in out.chunks_exact_mut(4).zip(s) {
                c.copy_from_slice(&w.to_le_bytes());
            }
            out
        };
        let inner = finish(secret.inner, challenge);
        let digest = finish(secret.outer, &inner);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn mechanism_secrets_match_what_the_sasl_mechanisms_compute() {
        // The store and the SASL code in proto derive the same secrets.
        let plain = StoredPassword::parse("{PLAIN}secret")
            .expect("parse")
            .with_user("alice@example.test");
        let scram = plain.scram_sha256().expect("scram");
        assert_eq!(
            scram,
            ScramSecret::from_password("secret", &scram.salt, scram.iterations)
        );
        assert_eq!(
            plain.cram_md5(),
            Some(CramMd5Secret::from_password("secret"))
        );
    }

    #[test]
    fn one_way_hashes_give_no_mechanism_secrets() {
        for field in &DOVEADM_SECRET[..4] {
            let stored = StoredPassword::parse(field).expect("parse");
            assert!(stored.scram_sha256().is_none(), "{field}");
            assert!(stored.cram_md5().is_none(), "{field}");
        }
    }

    #[test]
    fn debug_does_not_show_the_password() {
        let stored = StoredPassword::parse("{PLAIN}hunter2").expect("parse");
        let text = format!("{stored:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("Plain"), "{text}");
    }

    #[test]
    fn a_decoy_like_a_password_has_its_scheme_and_cost_and_admits_no_one() {
        let argon = argon2id_with(
            "pw",
            argon2::Params::new(1024, 1, 2, Some(32)).unwrap(),
            argon2::Version::V0x10,
        )
        .unwrap();
        let mut sha = ShaCrypt {
            sha512: true,
            rounds: 7000,
            salt: crypt_salt().unwrap(),
            hash: String::new(),
        };
        sha.hash = sha.compute("pw").unwrap();
        let blf = bcrypt::hash_with_salt("pw", 5, [7u8; SALT_LEN])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let scram = scram_keys("pw", &[1u8; SALT_LEN], 8192);
        let models = [
            format!("{{ARGON2ID}}{argon}"),
            format!("{{SHA512-CRYPT}}$6$rounds=7000${}${}", sha.salt, sha.hash),
            format!("{{BLF-CRYPT}}{blf}"),
            format!(
                "{{SCRAM-SHA-256}}8192,{},{},{}",
                B64.encode(&scram.salt),
                B64.encode(scram.stored_key),
                B64.encode(scram.server_key)
            ),
            hash(Scheme::CramMd5, "pw").unwrap(),
            hash(Scheme::Plain, "pw").unwrap(),
        ];
        let costs = [
            "$argon2id$v=16$m=1024,t=1,p=2",
            "$6$rounds=7000",
            "$2y$05",
            "{SCRAM-SHA-256}8192",
            "{CRAM-MD5}",
            "{PLAIN}",
        ];
        for (field, cost) in models.iter().zip(costs) {
            let model = StoredPassword::parse(field).unwrap();
            assert!(model.verify("pw"), "{field}");
            assert_eq!(model.cost(), cost, "{field}");
            let decoy = model.decoy_like().expect("a decoy");
            assert_eq!(decoy.scheme(), model.scheme(), "{field}");
            assert_eq!(decoy.cost(), cost, "{field}");
            for guess in ["", "pw", "password"] {
                assert!(!decoy.verify(guess), "{field} admits {guess:?}");
            }
        }
    }

    #[test]
    fn each_name_gets_a_users_cost_the_same_every_time_spread_as_the_users_are() {
        let sha = |rounds: usize, pw: &str| {
            let mut c = ShaCrypt {
                sha512: true,
                rounds,
                salt: crypt_salt().unwrap(),
                hash: String::new(),
            };
            c.hash = c.compute(pw).unwrap();
            StoredPassword::parse(&format!("$6$rounds={rounds}${}${}", c.salt, c.hash)).unwrap()
        };
        // Three users at 1,000 rounds, one at 2,000.
        let users = vec![
            sha(1000, "a"),
            sha(2000, "b"),
            sha(1000, "c"),
            sha(1000, "d"),
        ];
        let decoys = Decoys::new(users);
        assert_eq!(decoys.costs(), ["$6$rounds=1000", "$6$rounds=2000"]);
        assert!(!decoys.prepared(), "made on first use, or by prepare()");
        decoys.prepare();
        assert!(decoys.prepared());
        let key = b"0123456789abcdef0123456789abcdef";
        let mut cheap = 0;
        for i in 0..200 {
            let name = format!("nobody{i}@example.test");
            let d = decoys.for_name(key, &name).expect("a decoy");
            let again = decoys.for_name(key, &name).unwrap();
            assert!(std::ptr::eq(d, again), "{name} changed decoy");
            assert_eq!(d.scheme(), Scheme::Sha512Crypt);
            match d.cost().as_str() {
                "$6$rounds=1000" => cheap += 1,
                "$6$rounds=2000" => {}
                other => panic!("{name} got the cost {other}"),
            }
            for guess in ["a", "b", "c", "d", ""] {
                assert!(!d.verify(guess), "{name}'s decoy admits {guess:?}");
            }
        }
        // About three in four (150 of 200); a fixed key makes the count fixed.
        assert!(
            (120..=180).contains(&cheap),
            "{cheap} of 200 at the cheaper cost"
        );
        // Another key picks otherwise for some names.
        let other = b"fedcba9876543210fedcba9876543210";
        assert!((0..200).any(|i| {
            let name = format!("nobody{i}@example.test");
            decoys.for_name(key, &name).unwrap().cost()
                != decoys.for_name(other, &name).unwrap().cost()
        }));
    }

    #[test]
    fn without_users_the_decoy_is_a_new_hashs_cost() {
        let decoys = Decoys::new(Vec::new());
        let d = decoys
            .for_name(b"k", "nobody@example.test")
            .expect("a decoy");
        assert!(std::ptr::eq(d, decoy().unwrap()));
    }

    #[test]
    fn the_decoy_costs_what_a_new_hash_costs_and_admits_no_one() {
        let decoy = decoy().expect("a decoy");
        let Stored::Argon2id(phc) = &decoy.stored else {
            panic!("the decoy is {:?}, not Argon2id", decoy.scheme());
        };
        let fresh = hash(Scheme::Argon2id, "x").unwrap();
        let cost = |phc: &str| phc.split('$').nth(3).map(str::to_string);
        assert_eq!(
            cost(phc),
            cost(fresh.trim_start_matches("{ARGON2ID}")),
            "the decoy's cost differs from a new hash's"
        );
        assert!(cost(phc).is_some_and(|c| c == "m=65536,t=3,p=1"), "{phc}");
        for guess in ["", "password", "x"] {
            assert!(!decoy.verify(guess));
        }
    }
}
