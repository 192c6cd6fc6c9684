//! Signing keys for handoff tokens: one key signs, older keys still verify.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The shortest key accepted, in bytes (SPEC: at least 32).
pub const MIN_KEY_LEN: usize = 32;
/// The longest key id accepted, in bytes. Key ids travel in every token.
pub const MAX_KEY_ID_LEN: usize = 32;

/// Domain separation: a MAC made for another purpose (or another format version) never verifies.
pub(crate) const PURPOSE: &[u8] = b"tower-amp-session/handoff/v1";

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A set of HMAC-SHA256 keys, each with a short public id.
///
/// The first key added with [`KeyringBuilder::signing`] signs new tokens; keys added with
/// [`KeyringBuilder::verifying`] only verify, so a key can be rotated out without breaking
/// handoffs already in flight. A token names its key id and only that key is tried.
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
    // HMAC state with the key and purpose already absorbed: each token costs one clone.
    pub(crate) mac: HmacSha256,
}

/// Why a key or keyring was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }
}

impl std::error::Error for KeyError {}

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
    /// ```
    /// use tower_amp_session::Keyring;
    ///
    /// let text = format!("k1:{}", "a".repeat(44));
    /// assert!(Keyring::from_list(&text).is_ok());
    /// assert!(Keyring::from_list("k1").is_err());
    /// ```
    pub fn from_list(text: &str) -> Result<Keyring, KeyError> {
        let mut builder = Keyring::builder();
        for (i, item) in text.split(',').map(str::trim).enumerate() {
            let Some((id, key)) = item.split_once(':') else {
                // Never echo the entry: without `id:` it may be a bare key.
                return Err(KeyError::InvalidId(String::new()));
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
            let mut mac =
                <HmacSha256 as KeyInit>::new_from_slice(&key).map_err(|_| KeyError::TooShort {
                    id: id.clone(),
                    len: key.len(),
                })?;
            mac.update(&[PURPOSE.len() as u8]);
            mac.update(PURPOSE);
            keys.push(KeyEntry {
                id: id.into_boxed_str(),
                mac,
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
    /// A missing, empty or non-UTF-8 variable is [`KeyError::NoSigningKey`]. An entry without
    /// `id:` is [`KeyError::InvalidId`] with an empty id: the entry itself is likely a bare key
    /// and is never echoed into the error.
    ///
    /// ```
    /// use tower_amp_session::{KeyError, Keyring};
    ///
    /// std::env::set_var("DOC_AMP_KEYS", format!("k2:{},k1:{}", "a".repeat(44), "b".repeat(44)));
    /// let keyring = Keyring::from_env("DOC_AMP_KEYS")?;
    /// assert_eq!(keyring.signing_key_id(), "k2");
    /// assert_eq!(Keyring::from_env("DOC_AMP_UNSET").unwrap_err(), KeyError::NoSigningKey);
    /// # Ok::<(), KeyError>(())
    /// ```
    pub fn from_env(var: &str) -> Result<Keyring, KeyError> {
        let text = std::env::var(var).map_err(|_| KeyError::NoSigningKey)?;
        if text.trim().is_empty() {
            return Err(KeyError::NoSigningKey);
        }
        // `from_list` would quote the start of an entry without a colon, which may be a key.
        if text.split(',').any(|item| !item.contains(':')) {
            return Err(KeyError::InvalidId(String::new()));
        }
        Keyring::from_list(&text)
    }
}
