//! VSOA URL rules, shared by RPC routing and subscriptions.
//!
//! A route or subscription ending in `/` covers the URL without the slash
//! and everything under it (`/a/` covers `/a`, `/a/b`, `/a/b/c`, not
//! `/ab`); `/` covers everything. Both tables store such an entry under its
//! *key*, the text without the trailing slash (`/a/` → `/a`, `/` → ``), so
//! matching a URL is a few hash lookups along its ancestors, longest first.

/// Whether `url` is acceptable as a route, subscription or RPC target: it
/// starts with `/`.
pub(crate) fn valid(url: &str) -> bool {
    url.starts_with('/')
}

/// The key a prefix entry (`/a/`) is stored under, or `None` if `url` is an
/// exact entry (no trailing slash).
pub(crate) fn prefix_key(url: &str) -> Option<&str> {
    url.strip_suffix('/')
}

/// The prefix keys that cover `url`, longest first: for `/a/b` they are
/// `/a/b`, `/a`, `` (the last one is `/`).
pub(crate) fn covering_keys(url: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(url.strip_suffix('/').unwrap_or(url));
    std::iter::from_fn(move || {
        let key = next?;
        next = key.rfind('/').map(|i| &key[..i]);
        Some(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_keys_walk_up_to_the_root() {
        let keys: Vec<&str> = covering_keys("/a/b/c").collect();
        assert_eq!(keys, ["/a/b/c", "/a/b", "/a", ""]);
        let keys: Vec<&str> = covering_keys("/a/").collect();
        assert_eq!(keys, ["/a", ""]);
        let keys: Vec<&str> = covering_keys("/").collect();
        assert_eq!(keys, [""]);
    }

    #[test]
    fn prefix_keys_drop_the_slash() {
        assert_eq!(prefix_key("/a/"), Some("/a"));
        assert_eq!(prefix_key("/"), Some(""));
        assert_eq!(prefix_key("/a"), None);
    }
}
