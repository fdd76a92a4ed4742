//! The recipient memory's journal chunks in the shared store: the pairs one
//! node added during one housekeeping interval. A chunk names the seed it
//! was hashed with (by its fingerprint, [`super::novelty::RecipientMemory::seed_tag`]),
//! so that a chunk of another seed (a node that ran alone while the store
//! was unreachable) is refused instead of setting meaningless bits.
//!
//! Layout: `UGEMRJ01`, the seed tag (u64 LE), then the pairs (u64 LE each).

/// The first bytes of a chunk.
const MAGIC: &[u8; 8] = b"UGEMRJ01";

/// Why a chunk was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    /// Not a journal chunk of this format.
    #[error("not a recipient journal chunk")]
    Magic,
    /// Its length is not a whole number of pairs.
    #[error("recipient journal chunk of {0} bytes is torn")]
    Torn(usize),
    /// Hashed with another seed.
    #[error("recipient journal chunk of another seed")]
    OtherSeed,
}

/// A chunk of `pairs` hashed with the seed of `tag`.
pub fn encode(tag: u64, pairs: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + pairs.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&tag.to_le_bytes());
    for p in pairs {
        out.extend_from_slice(&p.to_le_bytes());
    }
    out
}

/// The pairs of a chunk, if it is of the seed of `tag`.
pub fn decode(chunk: &[u8], tag: u64) -> Result<Vec<u64>, ChunkError> {
    if chunk.len() < 16 || &chunk[..8] != MAGIC {
        return Err(ChunkError::Magic);
    }
    let body = &chunk[16..];
    if !body.len().is_multiple_of(8) {
        return Err(ChunkError::Torn(chunk.len()));
    }
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    if word(&chunk[8..16]) != tag {
        return Err(ChunkError::OtherSeed);
    }
    Ok(body.chunks_exact(8).map(word).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_reads_back_its_pairs() {
        let pairs = [1u64, u64::MAX, 0x0102_0304_0506_0708];
        let c = encode(42, &pairs);
        assert_eq!(c.len(), 16 + 24);
        assert_eq!(decode(&c, 42).unwrap(), pairs);
        assert_eq!(decode(&encode(42, &[]), 42).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn chunks_of_another_seed_torn_or_foreign_are_refused() {
        let c = encode(42, &[7, 8]);
        assert_eq!(decode(&c, 43), Err(ChunkError::OtherSeed));
        assert_eq!(decode(&c[..c.len() - 3], 42), Err(ChunkError::Torn(29)));
        assert_eq!(decode(b"UGEMRM02xxxxxxxx", 42), Err(ChunkError::Magic));
        assert_eq!(decode(b"short", 42), Err(ChunkError::Magic));
    }
}
