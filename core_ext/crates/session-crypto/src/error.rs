//! The crate's one error type. Messages are meant for people: they say what was wrong
//! and never include key material or plaintext.

/// Result alias used across the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Everything that can go wrong in `session-crypto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input has the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    InvalidLength {
        what: &'static str,
        expected: &'static str,
        got: usize,
    },
    /// A key is not usable (not a valid curve point, wrong form, ...).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A Session ID is not 66 hex characters with a known prefix.
    #[error("invalid Session ID: {0}")]
    InvalidSessionId(String),
    /// A recovery-phrase word is not in the word list.
    #[error("word {position} of the recovery phrase ({word:?}) is not in the word list")]
    UnknownWord { word: String, position: usize },
    /// The checksum word does not match the others.
    #[error("the recovery phrase's checksum word does not match: a word is wrong or missing")]
    ChecksumMismatch,
    /// The phrase has an unsupported number of words.
    #[error("a recovery phrase has 13 or 25 words, got {0}")]
    MnemonicLength(usize),
    /// The phrase is one word short of a full phrase (12 or 24 words): a word was left out.
    /// Refused rather than decoded without a checksum, which would open a different account.
    #[error(
        "the recovery phrase has {got} words but needs {expected}: a word is missing \
         (the last word is a checksum word)"
    )]
    MnemonicMissingWord { got: usize, expected: usize },
    /// A word list (not a full recovery phrase) has the wrong number of words.
    #[error("expected {expected} words, got {got}")]
    MnemonicWordCount { expected: &'static str, got: usize },
    /// A word triple encodes a value that does not fit in 32 bits.
    #[error("the recovery phrase is not valid: words {0} do not encode a 32-bit value")]
    MnemonicOverflow(String),
    /// Decryption or authentication failed.
    #[error("decryption failed: {0}")]
    DecryptionFailed(&'static str),
    /// A signature does not verify.
    #[error("signature verification failed")]
    InvalidSignature,
    /// Padded data does not follow the padding scheme.
    #[error("invalid padding: {0}")]
    BadPadding(&'static str),
    /// An input value is malformed (not a length or key problem).
    #[error("invalid {what}: {reason}")]
    InvalidValue {
        what: &'static str,
        reason: &'static str,
    },
    /// An input exceeds a size limit.
    #[error("{what} is too large: {got} bytes, the limit is {max}")]
    TooLarge {
        what: &'static str,
        max: usize,
        got: usize,
    },
}
