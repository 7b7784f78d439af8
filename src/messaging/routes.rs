//! The route table: URL → handler with VSOA's rules (exact URL, then the
//! longest covering `/` prefix, then the default route `/`).

use std::collections::HashMap;

use crate::wire::url;

/// URL → handler, with VSOA's exact / prefix / default rules.
#[derive(Clone)]
pub(crate) struct Table<H> {
    exact: HashMap<String, H>,
    /// By key: the route without its trailing `/` (`/` is ``).
    prefix: HashMap<String, H>,
}

impl<H> Default for Table<H> {
    fn default() -> Self {
        Table {
            exact: HashMap::new(),
            prefix: HashMap::new(),
        }
    }
}

impl<H> Table<H> {
    pub(crate) fn insert(&mut self, route: &str, handler: H) {
        match url::prefix_key(route) {
            Some(key) => self.prefix.insert(key.to_owned(), handler),
            None => self.exact.insert(route.to_owned(), handler),
        };
    }

    pub(crate) fn find(&self, target: &str) -> Option<&H> {
        if let Some(h) = self.exact.get(target) {
            return Some(h);
        }
        if self.prefix.is_empty() {
            return None;
        }
        url::covering_keys(target).find_map(|key| self.prefix.get(key))
    }

    pub(crate) fn routes(&self) -> impl Iterator<Item = String> + '_ {
        let prefix = self.prefix.keys().map(|k| format!("{k}/"));
        self.exact.keys().cloned().chain(prefix)
    }
}
