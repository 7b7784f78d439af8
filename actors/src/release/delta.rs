//! Binary patches between two versions of a release file: zstd with the
//! old file as a reference prefix (zstd's `--patch-from`), long-distance
//! matching and a window covering the whole old file.
//!
//! A patch is only a way to carry bytes: the file it produces must match
//! the new version's signed SHA-256 and length, and the Updater downloads
//! the file in full when it does not.
//!
//! ```
//! use psvc_actors::release::delta::{apply_patch, make_patch};
//! let old: Vec<u8> = (0..200_000u32).flat_map(|i| (i * 7).to_le_bytes()).collect();
//! let mut new = old.clone();
//! new[400_000..400_016].copy_from_slice(b"one changed line");
//! let patch = make_patch(&old, &new)?;
//! assert!(patch.len() < new.len() / 100);
//! let mut out = Vec::new();
//! apply_patch(&old, patch.as_slice(), &mut out, new.len() as u64)?;
//! assert_eq!(out, new);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{Read, Write};

/// Files larger than this (old or new) get no patch: the window would
/// not cover them, and both are held in memory.
pub const MAX_PATCH_INPUT: u64 = 256 * 1024 * 1024;

/// A patch is only offered when it is smaller than this fraction of the
/// full file (in percent); otherwise the full file is as good.
pub const MAX_PATCH_PERCENT: u64 = 50;

/// zstd level of patches: patches are made once, at approval, and fetched
/// by every installation, so the slow, strong end of the scale.
const LEVEL: i32 = 19;

/// The window log that covers `len` bytes (at least 1 MiB, at most 2 GiB).
fn window_log(len: u64) -> u32 {
    let bits = u64::BITS - len.max(1).leading_zeros();
    bits.clamp(20, 31)
}

/// The largest window a patch may ask for when applied.
const WINDOW_LOG_MAX: u32 = 29;

/// A patch from `old` to `new`.
///
/// # Errors
/// Either file is above [`MAX_PATCH_INPUT`], or zstd failed.
pub fn make_patch(old: &[u8], new: &[u8]) -> std::io::Result<Vec<u8>> {
    if old.len() as u64 > MAX_PATCH_INPUT || new.len() as u64 > MAX_PATCH_INPUT {
        return Err(std::io::Error::other(format!(
            "files above {MAX_PATCH_INPUT} bytes get no patch"
        )));
    }
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), LEVEL, old)?;
    encoder.long_distance_matching(true)?;
    encoder.window_log(window_log((old.len() + new.len()) as u64).min(WINDOW_LOG_MAX))?;
    encoder.include_checksum(false)?;
    encoder.write_all(new)?;
    encoder.finish()
}

/// Applies `patch` to `old`, writing the result to `out`; at most `limit`
/// bytes are produced (a patch that would produce more is an error).
/// Returns the number of bytes written.
///
/// # Errors
/// A corrupt patch, one made from another `old`, more output than
/// `limit`, or a write error.
pub fn apply_patch(
    old: &[u8],
    patch: impl Read,
    out: &mut impl Write,
    limit: u64,
) -> std::io::Result<u64> {
    let mut decoder =
        zstd::stream::read::Decoder::with_ref_prefix(std::io::BufReader::new(patch), old)?;
    decoder.window_log_max(WINDOW_LOG_MAX)?;
    let written = std::io::copy(&mut (&mut decoder).take(limit), out)?;
    let mut one = [0u8; 1];
    if written == limit && decoder.read(&mut one)? != 0 {
        return Err(std::io::Error::other(format!(
            "the patch produces more than {limit} bytes"
        )));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    }

    #[test]
    fn a_patch_reproduces_the_new_file_and_only_from_its_base() {
        let old = data(3 << 20, 1);
        let mut new = old.clone();
        new.splice(1_000_000..1_000_000, b"an inserted line\n".iter().copied());
        new[2_500_000] ^= 0xff;
        let patch = make_patch(&old, &new).unwrap();
        assert!(patch.len() < new.len() / 100, "patch {} bytes", patch.len());
        let mut out = Vec::new();
        apply_patch(&old, patch.as_slice(), &mut out, new.len() as u64).unwrap();
        assert_eq!(out, new);

        // From another base it fails or produces something else.
        let other = data(3 << 20, 2);
        let mut out = Vec::new();
        let r = apply_patch(&other, patch.as_slice(), &mut out, new.len() as u64);
        assert!(r.is_err() || out != new);
        // More than the limit is refused.
        let mut out = Vec::new();
        assert!(apply_patch(&old, patch.as_slice(), &mut out, new.len() as u64 - 1).is_err());
        // Garbage is refused.
        let mut out = Vec::new();
        assert!(apply_patch(&old, &b"not a patch"[..], &mut out, 100).is_err());
    }
}
