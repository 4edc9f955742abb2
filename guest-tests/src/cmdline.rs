//! The guest's kernel command line (`/chosen/bootargs`, porwatch's own
//! `porwatch.*` words already removed).

/// The value of the first `KEY=VALUE` word whose key is `key`.
pub fn value<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    words(bootargs, "").find(|(k, _)| *k == key).and_then(|(_, v)| v)
}

/// Every word whose key starts with `prefix`, as `(key, value)` (`value` is
/// `None` for a word without `=`).
pub fn words<'a>(
    bootargs: &'a str,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
    bootargs
        .split_ascii_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w, None),
        })
        .filter(move |(k, _)| k.starts_with(prefix))
}

/// Parses a decimal or `0x` hexadecimal unsigned number.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}
