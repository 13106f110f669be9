//! Recovery phrases (client spec §1.3): the Electrum-style encoding Session inherited from
//! Monero/Oxen, with the English list of 1626 words whose 3-letter prefixes are unique.
//!
//! Every 4 bytes (a little-endian u32 `x`) become three word indices; a phrase carries one
//! extra checksum word, a copy of the word at `crc32(3-letter prefixes) mod word_count`.
//! Words are matched by their first three letters, so typos after the prefix still decode.

use std::collections::HashMap;
use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The English word list, one word per line.
pub const WORDLIST_TEXT: &str = include_str!("../data/mnemonic-english.txt");
/// Number of words in the list.
pub const WORD_COUNT: usize = 1626;
/// Words are identified by this many leading characters.
pub const PREFIX_LEN: usize = 3;

const N: u64 = WORD_COUNT as u64;

struct WordList {
    words: Vec<&'static str>,
    by_prefix: HashMap<&'static str, u16>,
}

fn wordlist() -> &'static WordList {
    static LIST: OnceLock<WordList> = OnceLock::new();
    LIST.get_or_init(|| {
        let words: Vec<&'static str> = WORDLIST_TEXT
            .lines()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        let by_prefix = words
            .iter()
            .enumerate()
            .map(|(i, w)| (prefix(w), i as u16))
            .collect();
        WordList { words, by_prefix }
    })
}

/// The English words, in list order.
pub fn words() -> &'static [&'static str] {
    &wordlist().words
}

/// The first `PREFIX_LEN` characters (whole word when shorter).
fn prefix(word: &str) -> &str {
    match word.char_indices().nth(PREFIX_LEN) {
        Some((i, _)) => &word[..i],
        None => word,
    }
}

fn checksum_index(words: &[&str]) -> usize {
    let mut h = crc32fast::Hasher::new();
    for w in words {
        h.update(prefix(w).as_bytes());
    }
    h.finalize() as usize % words.len()
}

/// Encodes `data` (a non-empty multiple of 4 bytes) as words separated by single spaces,
/// followed by the checksum word when `checksum` is set.
pub fn encode_words(data: &[u8], checksum: bool) -> Result<Zeroizing<String>> {
    if data.is_empty() || data.len() % 4 != 0 {
        return Err(Error::InvalidLength {
            what: "data for a recovery phrase",
            expected: "a non-zero multiple of 4",
            got: data.len(),
        });
    }
    let list = words();
    let mut chosen: Vec<&str> = Vec::with_capacity(data.len() / 4 * 3 + 1);
    for group in data.chunks_exact(4) {
        let x = u64::from(u32::from_le_bytes([group[0], group[1], group[2], group[3]]));
        let w1 = x % N;
        let w2 = (x / N + w1) % N;
        let w3 = (x / N / N + w2) % N;
        chosen.extend([list[w1 as usize], list[w2 as usize], list[w3 as usize]]);
    }
    if checksum {
        chosen.push(chosen[checksum_index(&chosen)]);
    }
    Ok(Zeroizing::new(chosen.join(" ")))
}

/// Encodes a recovery seed: 16 bytes → 13 words, 32 bytes (legacy) → 25 words.
pub fn encode(seed: &[u8]) -> Result<Zeroizing<String>> {
    match seed.len() {
        16 | 32 => encode_words(seed, true),
        got => Err(Error::InvalidLength {
            what: "a recovery seed",
            expected: "16 or 32",
            got,
        }),
    }
}

/// Decodes words (already split; compared case-insensitively) to bytes. With `checksum`
/// the last word is the checksum word (3k+1 words), without it 3k words.
pub fn decode_words<S: AsRef<str>>(input: &[S], checksum: bool) -> Result<Zeroizing<Vec<u8>>> {
    let count = input.len();
    let data_words = if checksum {
        count.checked_sub(1)
    } else {
        Some(count)
    };
    let data_words = match data_words {
        Some(n) if n > 0 && n % 3 == 0 => n,
        _ => {
            return Err(Error::MnemonicWordCount {
                expected: if checksum {
                    "a multiple of 3 plus one checksum word"
                } else {
                    "a non-zero multiple of 3"
                },
                got: count,
            })
        }
    };
    let list = wordlist();
    let lowered: Vec<Zeroizing<String>> = input
        .iter()
        .map(|w| Zeroizing::new(w.as_ref().to_lowercase()))
        .collect();
    let mut indices: Zeroizing<Vec<u16>> = Zeroizing::new(Vec::with_capacity(count));
    for (pos, w) in lowered.iter().enumerate() {
        match list.by_prefix.get(prefix(w)) {
            Some(&i) => indices.push(i),
            None => {
                return Err(Error::UnknownWord {
                    word: input[pos].as_ref().to_owned(),
                    position: pos + 1,
                })
            }
        }
    }
    let mut out = Zeroizing::new(Vec::with_capacity(data_words / 3 * 4));
    for (t, triple) in indices[..data_words].chunks_exact(3).enumerate() {
        let (w1, w2, w3) = (
            u64::from(triple[0]),
            u64::from(triple[1]),
            u64::from(triple[2]),
        );
        let x = w1 + N * ((N - w1 + w2) % N) + N * N * ((N - w2 + w3) % N);
        if x % N != w1 || x > u64::from(u32::MAX) {
            return Err(Error::MnemonicOverflow(format!(
                "{}-{}",
                3 * t + 1,
                3 * t + 3
            )));
        }
        out.extend_from_slice(&(x as u32).to_le_bytes());
    }
    if checksum {
        // Recompute over the canonical list words (prefixes are what counts).
        let canonical: Vec<&str> = indices[..data_words]
            .iter()
            .map(|&i| list.words[i as usize])
            .collect();
        if indices[checksum_index(&canonical)] != indices[data_words] {
            return Err(Error::ChecksumMismatch);
        }
    }
    Ok(out)
}

/// Decodes a recovery phrase: 13 or 25 words, separated by any whitespace, any letter case.
///
/// The checksum word is mandatory, as in Session Desktop: 12 or 24 words (which libsession
/// decodes without a checksum) are refused with [`Error::MnemonicMissingWord`], because a
/// phrase with a word left out anywhere but at the end would open a different, empty account.
/// [`decode_words`] still decodes a bare word list without its checksum word.
pub fn decode(phrase: &str) -> Result<Zeroizing<Vec<u8>>> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    match words.len() {
        13 | 25 => decode_words(&words, true),
        n @ (12 | 24) => Err(Error::MnemonicMissingWord {
            got: n,
            expected: n + 1,
        }),
        n => Err(Error::MnemonicLength(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shape() {
        let w = words();
        assert_eq!(w.len(), WORD_COUNT);
        assert_eq!(&w[..3], &["abbey", "abducts", "ability"]);
        assert_eq!(&w[WORD_COUNT - 3..], &["zombie", "zones", "zoom"]);
        assert_eq!(
            wordlist().by_prefix.len(),
            WORD_COUNT,
            "3-letter prefixes must be unique"
        );
        assert!(w.windows(2).all(|p| p[0] < p[1]), "alphabetical");
    }

    #[test]
    fn round_trip_every_word_position() {
        for i in 0..WORD_COUNT as u32 * 3 {
            let seed: Vec<u8> = (0..4)
                .flat_map(|k| (i.wrapping_mul(2654435761).rotate_left(k)).to_le_bytes())
                .collect();
            let phrase = encode(&seed).expect("16 bytes");
            assert_eq!(&decode(&phrase).expect("round trip")[..], &seed[..]);
        }
    }

    #[test]
    fn count_errors() {
        assert!(matches!(decode(""), Err(Error::MnemonicLength(0))));
        assert!(matches!(
            decode("abbey abbey"),
            Err(Error::MnemonicLength(2))
        ));
        assert!(matches!(
            decode_words(&["abbey"; 4], false),
            Err(Error::MnemonicWordCount { .. })
        ));
        assert!(matches!(
            decode_words::<&str>(&[], true),
            Err(Error::MnemonicWordCount { .. })
        ));
        assert!(encode(&[0u8; 15]).is_err());
        assert!(encode_words(&[], false).is_err());
    }

    #[test]
    fn a_missing_word_is_refused() {
        let seed: Vec<u8> = (0u8..16).collect();
        let phrase = encode(&seed).expect("16 bytes");
        let words: Vec<&str> = phrase.split(' ').collect();
        for gap in 0..words.len() {
            let short: Vec<&str> = words
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != gap)
                .map(|(_, w)| *w)
                .collect();
            let e = decode(&short.join(" ")).err();
            assert_eq!(
                e,
                Some(Error::MnemonicMissingWord {
                    got: 12,
                    expected: 13
                }),
                "gap {gap}"
            );
            assert!(e
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("a word is missing"));
        }
        let legacy = encode(&[7u8; 32]).expect("32 bytes");
        let short: Vec<&str> = legacy.split(' ').skip(1).collect();
        assert_eq!(
            decode(&short.join(" ")).err(),
            Some(Error::MnemonicMissingWord {
                got: 24,
                expected: 25
            })
        );
        // A bare word list without its checksum word still decodes where asked for explicitly.
        assert_eq!(
            &decode_words(&words[..12], false).expect("12 data words")[..],
            &seed[..]
        );
    }

    #[test]
    fn unknown_word_names_position() {
        let e =
            decode("abbey ab abbey abbey abbey abbey abbey abbey abbey abbey abbey abbey abbey");
        assert_eq!(
            e.err(),
            Some(Error::UnknownWord {
                word: "ab".into(),
                position: 2
            })
        );
        // Case-insensitive, and non-ASCII input does not break prefixing.
        assert!(decode(
            "ABBEY abbey abbey abbey abbey abbey abbey abbey abbey abbey abbey abbey Abbey"
        )
        .is_ok());
        assert!(matches!(
            decode("ééé abbey abbey abbey abbey abbey abbey abbey abbey abbey abbey abbey abbey"),
            Err(Error::UnknownWord { position: 1, .. })
        ));
    }
}
