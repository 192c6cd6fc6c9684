//! Keys for handoff tokens: one key seals new tokens, older keys still open them.
//!
//! A keyring key is never used as it is. When the keyring is built, each key is expanded with
//! HKDF-SHA256 (no salt; `info` = [`HANDOFF_INFO`], which names the purpose and the token
//! format version) into the 256-bit XChaCha20-Poly1305 key that seals and opens handoff tokens.
//! The derivation runs once per key, never per token. Another purpose or format version gets
//! another `info`, so it gets unrelated keys from the same keyring.

use std::fmt;

use base64::Engine as _;
use hkdf::Hkdf;
use sha2::Sha256;

/// The shortest key accepted, in bytes (SPEC: at least 32). A key should be random: 32
/// bytes from a CSPRNG, e.g. `openssl rand -base64 32`.
///
/// ```
/// use tower_amp_session::{KeyError, Keyring, MIN_KEY_LEN};
///
/// let short = Keyring::builder().signing("k1", [7u8; MIN_KEY_LEN - 1]).build();
/// assert!(matches!(short, Err(KeyError::TooShort { len: 31, .. })));
/// ```
pub const MIN_KEY_LEN: usize = 32;
/// The longest key id accepted, in bytes. Key ids travel in clear in every token (they pick
/// the key), so keep them short and meaningless: `k1`, `2025-06`.
///
/// ```
/// use tower_amp_session::{Keyring, MAX_KEY_ID_LEN};
///
/// let long_id = "k".repeat(MAX_KEY_ID_LEN + 1);
/// assert!(Keyring::builder().signing(long_id, [7u8; 32]).build().is_err());
/// ```
pub const MAX_KEY_ID_LEN: usize = 32;

/// HKDF `info` of the handoff token key: purpose and format version. A token of another
/// purpose or version is sealed under another key and never opens as a handoff token.
pub(crate) const HANDOFF_INFO: &[u8] = b"tower-amp-session/handoff/v2";
/// HKDF `info` of the key that authenticates a confirmation page's render time.
pub(crate) const RENDER_INFO: &[u8] = b"tower-amp-session/confirmation render/v1";

/// A set of secret keys, each with a short public id.
///
/// The key added with [`KeyringBuilder::signing`] seals new handoff tokens; keys added with
/// [`KeyringBuilder::verifying`] only open them, so a key can be rotated out without breaking
/// handoffs already in flight. A token names its key id in clear and only that key is tried.
/// The keys themselves are never used directly: a per-purpose key is derived from each one
/// with HKDF-SHA256 when the keyring is built.
///
/// ```
/// use tower_amp_session::Keyring;
///
/// let keyring = Keyring::builder()
///     .signing("k2", [7u8; 32])
///     .verifying("k1", [9u8; 32]);
/// assert!(keyring.is_ok());
/// ```
#[derive(Clone)]
pub struct Keyring {
    // Index 0 signs. Few keys, so a linear scan beats hashing.
    keys: Vec<KeyEntry>,
}

#[derive(Clone)]
pub(crate) struct KeyEntry {
    pub(crate) id: Box<str>,
    /// The handoff token's XChaCha20-Poly1305 key, derived once from the keyring key
    /// (HKDF-SHA256, [`HANDOFF_INFO`]). The raw key is not kept.
    pub(crate) handoff: [u8; 32],
    /// The confirmation page's render-time MAC key (HKDF-SHA256, [`RENDER_INFO`]).
    pub(crate) render: [u8; 32],
}

/// HKDF-SHA256 of `key` for `info`: the 32-byte key of one purpose.
pub(crate) fn derive(key: &[u8], info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(None, key)
        .expand(info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// Why a key or keyring was refused.
///
/// `Debug` carries the message too (then the variant), so that `?` in `main`, which prints
/// `Debug`, says what is wrong:
///
/// ```
/// use tower_amp_session::KeyError;
///
/// let e = KeyError::EnvNotSet("AMP_SESSION_KEYS".into());
/// assert!(format!("{e:?}").starts_with("AMP_SESSION_KEYS is not set; it must hold"));
/// assert!(format!("{e:?}").ends_with("(KeyError::EnvNotSet)"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is shorter than [`MIN_KEY_LEN`] bytes.
    TooShort {
        /// The key id.
        id: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The key id is empty, too long, or not made of `A-Z a-z 0-9 - _ .`.
    InvalidId(String),
    /// Two keys share one id.
    DuplicateId(String),
    /// The key text is not valid base64.
    InvalidBase64(String),
    /// No key signs.
    NoSigningKey,
    /// A second signing key was given.
    SeveralSigningKeys,
    /// An entry of a key list ([`Keyring::from_list`]) is not `id:<base64>`. `entry` counts
    /// from 1; the entry itself is never echoed, since it may be a bare key.
    MissingId {
        /// Position of the entry in the list, from 1.
        entry: usize,
    },
    /// [`Keyring::from_env`]: the variable (named) is not set.
    EnvNotSet(String),
    /// [`Keyring::from_env`]: the variable (named) is set but empty or blank.
    EnvEmpty(String),
    /// [`Keyring::from_env`]: the variable (named) is not valid UTF-8.
    EnvNotUnicode(String),
    /// [`Keyring::from_env`]: the variable `var` holds a key list that `error` refuses.
    Env {
        /// The environment variable.
        var: String,
        /// What is wrong with its value.
        error: Box<KeyError>,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::TooShort { id, len } => write!(
                f,
                "key {id:?} is {len} bytes; keys must be at least {MIN_KEY_LEN} bytes"
            ),
            KeyError::InvalidId(id) => write!(
                f,
                "key id {id:?} must be 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 - _ ."
            ),
            KeyError::DuplicateId(id) => write!(f, "key id {id:?} is used twice"),
            KeyError::InvalidBase64(id) => write!(f, "key {id:?} is not valid base64"),
            KeyError::NoSigningKey => f.write_str("the keyring has no signing key"),
            KeyError::SeveralSigningKeys => {
                f.write_str("the keyring has more than one signing key")
            }
            KeyError::MissingId { entry } => {
                write!(f, "key list entry {entry} is not of the form id:<base64>")
            }
            KeyError::EnvNotSet(var) => write!(f, "{var} is not set; {ENV_FORM}"),
            KeyError::EnvEmpty(var) => write!(f, "{var} is empty; {ENV_FORM}"),
            KeyError::EnvNotUnicode(var) => write!(f, "{var} is not valid UTF-8"),
            KeyError::Env { var, error } => write!(f, "{var}: {error}"),
        }
    }
}

/// What a keyring variable must hold, for the errors that find it unset or empty.
const ENV_FORM: &str = "it must hold the handoff keys as id:<base64>[,id:<base64>...], the \
     first one signing, each at least 32 random bytes (e.g. k1:$(openssl rand -base64 32))";

impl KeyError {
    /// The variant's name, for `Debug`.
    fn variant(&self) -> &'static str {
        match self {
            KeyError::TooShort { .. } => "TooShort",
            KeyError::InvalidId(_) => "InvalidId",
            KeyError::DuplicateId(_) => "DuplicateId",
            KeyError::InvalidBase64(_) => "InvalidBase64",
            KeyError::NoSigningKey => "NoSigningKey",
            KeyError::SeveralSigningKeys => "SeveralSigningKeys",
            KeyError::MissingId { .. } => "MissingId",
            KeyError::EnvNotSet(_) => "EnvNotSet",
            KeyError::EnvEmpty(_) => "EnvEmpty",
            KeyError::EnvNotUnicode(_) => "EnvNotUnicode",
            KeyError::Env { .. } => "Env",
        }
    }
}

/// The message, then the variant: `?` in `main` prints this.
impl fmt::Debug for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Env { error, .. } => {
                write!(f, "{self} (KeyError::Env, KeyError::{})", error.variant())
            }
            _ => write!(f, "{self} (KeyError::{})", self.variant()),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Env { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

/// A keyring under construction; errors surface from [`crate::ConfigBuilder::build`].
#[derive(Clone, Default)]
pub struct KeyringBuilder {
    signing: Option<(String, Vec<u8>)>,
    verifying: Vec<(String, Vec<u8>)>,
    error: Option<KeyError>,
    prebuilt: Option<Keyring>,
}

impl Keyring {
    /// Starts an empty keyring; add one signing key and any number of verifying keys.
    pub fn builder() -> KeyringBuilder {
        KeyringBuilder::default()
    }

    /// Builds a keyring from text such as `k2:<base64>,k1:<base64>`: the first key signs,
    /// all verify. This is the form for instances that share keys through the environment.
    ///
    /// An entry without `id:` is [`KeyError::MissingId`] with its position: the entry itself
    /// is likely a bare key and is never echoed into the error.
    ///
    /// ```
    /// use tower_amp_session::{KeyError, Keyring};
    ///
    /// let text = format!("k1:{}", "a".repeat(44));
    /// assert!(Keyring::from_list(&text).is_ok());
    /// assert_eq!(Keyring::from_list("k1").unwrap_err(), KeyError::MissingId { entry: 1 });
    /// ```
    pub fn from_list(text: &str) -> Result<Keyring, KeyError> {
        let mut builder = Keyring::builder();
        for (i, item) in text.split(',').map(str::trim).enumerate() {
            let Some((id, key)) = item.split_once(':') else {
                // Never echo the entry: without `id:` it may be a bare key.
                return Err(KeyError::MissingId { entry: i + 1 });
            };
            builder = if i == 0 {
                builder.signing_base64(id.trim(), key.trim())
            } else {
                builder.verifying_base64(id.trim(), key.trim())
            };
        }
        builder.build()
    }

    /// The id of the key that signs new tokens.
    pub fn signing_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub(crate) fn signer(&self) -> &KeyEntry {
        &self.keys[0]
    }

    pub(crate) fn find(&self, id: &[u8]) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.id.as_bytes() == id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Keyring")
            .field(
                "key_ids",
                &self.keys.iter().map(|k| &*k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl fmt::Debug for KeyringBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringBuilder")
            .field("signing", &self.signing.as_ref().map(|(id, _)| id))
            .field(
                "verifying",
                &self.verifying.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn decode_key(id: &str, text: &str) -> Result<Vec<u8>, KeyError> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let unpadded = text.trim_end_matches('=');
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded))
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .map_err(|_| KeyError::InvalidBase64(id.to_owned()))
}

impl KeyringBuilder {
    /// Sets the key that signs new tokens (and verifies).
    pub fn signing(mut self, id: impl Into<String>, key: impl AsRef<[u8]>) -> Self {
        if self.signing.is_some() {
            self.error.get_or_insert(KeyError::SeveralSigningKeys);
        }
        self.signing = Some((id.into(), key.as_ref().to_vec()));
        self
    }

    /// Adds a key that only verifies: an older key kept while its tokens may still be in flight.
    pub fn verifying(mut self, id: impl Into<String>, key: impl AsRef<[u8]>) -> Self {
        self.verifying.push((id.into(), key.as_ref().to_vec()));
        self
    }

    /// [`KeyringBuilder::signing`] with the key as base64 text (standard or URL-safe alphabet).
    pub fn signing_base64(self, id: impl Into<String>, key: &str) -> Self {
        let id = id.into();
        match decode_key(&id, key) {
            Ok(bytes) => self.signing(id, bytes),
            Err(e) => self.fail(e),
        }
    }

    /// [`KeyringBuilder::verifying`] with the key as base64 text.
    pub fn verifying_base64(self, id: impl Into<String>, key: &str) -> Self {
        let id = id.into();
        match decode_key(&id, key) {
            Ok(bytes) => self.verifying(id, bytes),
            Err(e) => self.fail(e),
        }
    }

    fn fail(mut self, e: KeyError) -> Self {
        self.error.get_or_insert(e);
        self
    }

    /// Checks every key and returns the keyring.
    pub fn build(self) -> Result<Keyring, KeyError> {
        if let Some(k) = self.prebuilt {
            return Ok(k);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        let signing = self.signing.ok_or(KeyError::NoSigningKey)?;
        let mut keys: Vec<KeyEntry> = Vec::with_capacity(1 + self.verifying.len());
        for (id, key) in std::iter::once(signing).chain(self.verifying) {
            if id.is_empty()
                || id.len() > MAX_KEY_ID_LEN
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(KeyError::InvalidId(id));
            }
            if key.len() < MIN_KEY_LEN {
                return Err(KeyError::TooShort { id, len: key.len() });
            }
            if keys.iter().any(|k| *k.id == *id) {
                return Err(KeyError::DuplicateId(id));
            }
            let handoff = derive(&key, HANDOFF_INFO);
            keys.push(KeyEntry {
                id: id.into_boxed_str(),
                handoff,
                render: derive(&key, RENDER_INFO),
            });
        }
        Ok(Keyring { keys })
    }

    /// Whether [`KeyringBuilder::build`] would succeed.
    pub fn is_ok(&self) -> bool {
        self.clone().build().is_ok()
    }
}

impl Keyring {
    /// Keys are already checked; rebuilding from them cannot fail.
    pub(crate) fn into_builder(self) -> KeyringBuilder {
        KeyringBuilder {
            prebuilt: Some(self),
            ..KeyringBuilder::default()
        }
    }
}

impl Keyring {
    /// Builds a keyring from the environment variable `var` in the [`Keyring::from_list`] form,
    /// `k2:<base64>,k1:<base64>`: the first key signs, all verify. Give every origin instance
    /// the same value so that a token minted by one completes on any other.
    ///
    /// This is the quick start's form too: `AMP_SESSION_KEYS=k1:$(openssl rand -base64 32)`.
    ///
    /// Every error names the variable, and an unset or empty one says what it must hold:
    /// [`KeyError::EnvNotSet`], [`KeyError::EnvEmpty`],
    /// [`KeyError::EnvNotUnicode`], or [`KeyError::Env`] wrapping what [`Keyring::from_list`]
    /// refused, e.g. `AMP_SESSION_KEYS: key "k1" is not valid base64`. Key material is never
    /// echoed into an error.
    ///
    /// ```
    /// use tower_amp_session::{KeyError, Keyring};
    ///
    /// std::env::set_var("DOC_AMP_KEYS", format!("k2:{},k1:{}", "a".repeat(44), "b".repeat(44)));
    /// let keyring = Keyring::from_env("DOC_AMP_KEYS")?;
    /// assert_eq!(keyring.signing_key_id(), "k2");
    ///
    /// let unset = Keyring::from_env("DOC_AMP_UNSET").unwrap_err();
    /// assert_eq!(unset, KeyError::EnvNotSet("DOC_AMP_UNSET".into()));
    /// assert!(unset.to_string().starts_with("DOC_AMP_UNSET is not set; it must hold the handoff keys as id:<base64>"));
    ///
    /// std::env::set_var("DOC_AMP_BAD", "k1:not*base64");
    /// let bad = Keyring::from_env("DOC_AMP_BAD").unwrap_err();
    /// assert_eq!(bad.to_string(), r#"DOC_AMP_BAD: key "k1" is not valid base64"#);
    /// # Ok::<(), KeyError>(())
    /// ```
    pub fn from_env(var: &str) -> Result<Keyring, KeyError> {
        let text = match std::env::var(var) {
            Ok(text) => text,
            Err(std::env::VarError::NotPresent) => return Err(KeyError::EnvNotSet(var.into())),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(KeyError::EnvNotUnicode(var.into()))
            }
        };
        if text.trim().is_empty() {
            return Err(KeyError::EnvEmpty(var.into()));
        }
        Keyring::from_list(&text).map_err(|error| KeyError::Env {
            var: var.into(),
            error: Box::new(error),
        })
    }
}
