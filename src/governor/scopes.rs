//! Fixed-size keys for scopes and a sharded table of per-scope state.
//!
//! The RCPT path looks a sender up in the limiters and in the detector for
//! every recipient; with String keys each lookup hashes with SipHash,
//! allocates the key and follows a pointer to compare it. Here a scope name
//! is hashed once into a 128-bit [`ScopeKey`] (two independently seeded
//! 64-bit hashes: a collision among millions of keys has a chance near
//! 2^-90), which then serves as the key everywhere without allocating.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher as _};
use std::sync::{Mutex, MutexGuard};

/// A scope (domain or sender) as a 128-bit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey(pub u128);

impl ScopeKey {
    /// The key of one kind of limit on this scope (MAIL rates, RCPT rates):
    /// the same scope gets distinct limiter keys per limit.
    pub fn limit(self, tag: LimitTag) -> u128 {
        self.0 ^ tag as u128
    }
}

/// Which limit a limiter key counts; mixed into the scope key.
#[derive(Debug, Clone, Copy)]
#[repr(u128)]
pub enum LimitTag {
    /// Messages (MAIL).
    Messages = 0x6d65_7373_6167_6573_0000_0000_0000_0001,
    /// Recipients (RCPT).
    Recipients = 0x7265_6369_7069_656e_0000_0000_0000_0002,
}

/// Turns scope names into [`ScopeKey`]s with seeds chosen at start.
// Two hashers of different constructions and seeds, so that the halves
// do not fail together.
#[derive(Debug, Clone, Default)]
pub struct Keyer {
    a: foldhash::quality::RandomState,
    b: foldhash::fast::RandomState,
}

impl Keyer {
    /// The key of a scope by its stored name ("d:agency.kz", "s:a@agency.kz");
    /// equal to [`Keyer::domain`] or [`Keyer::sender`] of the part after the colon.
    pub fn key(&self, name: &str) -> ScopeKey {
        match name.split_once(':') {
            Some(("d", d)) => self.domain(d),
            Some(("s", s)) => self.sender(s),
            _ => self.prefixed(0, name),
        }
    }

    /// The key of a domain scope without building its name.
    pub fn domain(&self, domain: &str) -> ScopeKey {
        self.prefixed(b'd', domain)
    }

    /// The key of a sender scope (a lowercased address) without building its name.
    pub fn sender(&self, sender: &str) -> ScopeKey {
        self.prefixed(b's', sender)
    }

    fn prefixed(&self, kind: u8, rest: &str) -> ScopeKey {
        fn one(s: &impl BuildHasher, kind: u8, rest: &str) -> u64 {
            let mut h = s.build_hasher();
            h.write_u8(kind);
            h.write(rest.as_bytes());
            h.finish()
        }
        let (hi, lo) = (one(&self.a, kind, rest), one(&self.b, kind, rest));
        ScopeKey((u128::from(hi) << 64) | u128::from(lo))
    }
}

/// A hasher for keys that are hashes already: the map need not hash them
/// a second time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only integer keys are used; fold anything else in rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u128(&mut self, n: u128) {
        // Scope keys: the low half is one of its two random hashes.
        self.0 = n as u64;
    }
}

/// The hasher of maps keyed by [`ScopeKey`]: the key is a hash already.
pub type Hasher = BuildHasherDefault<Prehashed>;

/// A map from [`ScopeKey`] to `T`, in shards so sessions on several cores
/// rarely wait for one another.
pub struct ScopeTable<T> {
    shards: Box<[Mutex<HashMap<ScopeKey, T, Hasher>>]>,
}

const SHARDS: usize = 32;

impl<T> Default for ScopeTable<T> {
    fn default() -> Self {
        ScopeTable {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }
}

impl<T> ScopeTable<T> {
    /// The locked shard holding `k`.
    pub fn shard(&self, k: ScopeKey) -> MutexGuard<'_, HashMap<ScopeKey, T, Hasher>> {
        // High bits pick the shard; the map hashes the low 64 (Prehashed).
        let i = ((k.0 >> 96) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on every shard in turn (housekeeping, listing).
    pub fn each_shard(&self, mut f: impl FnMut(&mut HashMap<ScopeKey, T, Hasher>)) {
        for s in self.shards.iter() {
            f(&mut s.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// Entries across all shards.
    pub fn len(&self) -> usize {
        let mut n = 0;
        self.each_shard(|m| n += m.len());
        n
    }

    /// True when no shard holds an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parts_give_the_same_key() {
        let k = Keyer::default();
        assert_eq!(k.key("d:agency.kz"), k.domain("agency.kz"));
        assert_eq!(k.key("s:a@agency.kz"), k.sender("a@agency.kz"));
        // A domain and a sender spelled alike are different scopes.
        assert_ne!(k.domain("x"), k.sender("x"));
        assert_ne!(k.sender("a@x"), k.sender("b@x"));
        // Limits of one scope do not share a key.
        let s = k.sender("a@x");
        assert_ne!(s.limit(LimitTag::Messages), s.limit(LimitTag::Recipients));
    }

    #[test]
    fn a_million_names_do_not_collide() {
        let k = Keyer::default();
        let (mut hi, mut lo) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        for i in 0..1_000_000 {
            // Each half alone is collision-free here too: neither is weak.
            let key = k.sender(&format!("user{i}@agency.kz")).0;
            assert!(hi.insert((key >> 64) as u64), "high half collided at {i}");
            assert!(lo.insert(key as u64), "low half collided at {i}");
        }
    }

    #[test]
    fn table_keeps_entries_in_their_shards() {
        let t: ScopeTable<u32> = ScopeTable::default();
        let k = Keyer::default();
        for i in 0..1000u32 {
            t.shard(k.sender(&format!("u{i}@x")))
                .insert(k.sender(&format!("u{i}@x")), i);
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.shard(k.sender("u7@x")).get(&k.sender("u7@x")), Some(&7));
        t.each_shard(|m| m.retain(|_, v| *v % 2 == 0));
        assert_eq!(t.len(), 500);
        assert!(!t.is_empty());
    }
}
