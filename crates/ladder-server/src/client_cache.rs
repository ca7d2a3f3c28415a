//! Registered clients kept in memory for a few seconds. Every authorization, token, introspection
//! and revocation request names a client, and reading it each time was a database round trip on
//! the hot path. Changes made through this node (the console) forget the entry at once; changes
//! made elsewhere (the CLI, another node) are seen within `TTL`. A secret that does not match the
//! cached client is checked again against a fresh read before it is refused, so a secret rotated
//! elsewhere works at once.

use std::collections::HashMap;
use std::sync::RwLock;

use ladder_store::clients::Client;

/// How long (seconds) another node's or the CLI's change to a client may take to be seen here.
pub const TTL_SECS: i64 = 5;
/// More clients than this and the cache starts over (only registered clients are ever cached).
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct ClientCache {
    /// Each client with the time (the server clock's seconds) it was read.
    entries: RwLock<HashMap<String, (Client, i64)>>,
}

impl ClientCache {
    /// The cached client, if it was read less than `TTL_SECS` before `now`.
    pub fn get(&self, id: &str, now: i64) -> Option<Client> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(id).filter(|(_, at)| (*at..*at + TTL_SECS).contains(&now)).map(|(c, _)| c.clone())
    }

    /// Remembers a client just read from the database (unknown ids are never cached).
    pub fn put(&self, client: &Client, now: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(&client.id) {
            entries.clear();
        }
        entries.insert(client.id.clone(), (client.clone(), now));
    }

    /// Drops a client this node has just changed or deleted.
    pub fn forget(&self, id: &str) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            name: "n".into(),
            secret_hash: None,
            is_public: true,
            redirect_uris: vec![],
            scopes: vec![],
            default_acr_values: None,
            min_acr: None,
            disabled: false,
            created_at: 0,
            updated_at: 0,
            strict_acr: false,
            settings: Default::default(),
        }
    }

    #[test]
    fn remembers_and_forgets() {
        let cache = ClientCache::default();
        assert!(cache.get("a", 100).is_none());
        cache.put(&client("a"), 100);
        assert_eq!(cache.get("a", 104).map(|c| c.id), Some("a".to_owned()));
        assert!(cache.get("a", 105).is_none(), "stale after TTL_SECS");
        assert!(cache.get("a", 99).is_none(), "a clock that went back does not extend it");
        cache.forget("a");
        assert!(cache.get("a", 100).is_none());
    }

    #[test]
    fn stays_bounded() {
        let cache = ClientCache::default();
        for i in 0..=CAPACITY {
            cache.put(&client(&i.to_string()), 0);
        }
        assert!(cache.entries.read().unwrap().len() <= CAPACITY);
        assert!(cache.get(&CAPACITY.to_string(), 0).is_some(), "the newest entry survives a reset");
    }
}
