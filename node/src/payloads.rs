//! The payload store: record contents kept where they can be erased.
//!
//! sled is log-structured: a removed value stays in its segment files until sled happens to
//! rewrite them, so nothing a record says is ever written to sled. Payloads live here instead,
//! in append-only pack files, and sled holds only where each one is (see `crate::store`). The
//! signed entries of a batch are appended with its payloads (store format 4): sled writes each
//! changed page again, so the entries take far less room here than in sled, and they are
//! never erased.
//!
//! ```text
//! DIR/payloads/00000001.pack   payload bytes, back to back; a new file past SEGMENT_BYTES_SOFT_MAX
//! ```
//!
//! - **Append**: the payloads and entries of a batch are written at the end of the active pack and made
//!   durable (`fdatasync`) *before* the sled batch that names them is applied. sled records the
//!   committed length of the pack in the same batch.
//! - **Open**: every pack is cut back to its committed length, and a pack sled never committed
//!   is removed, so bytes of a batch that crashed before its commit are gone too.
//! - **Erase**: a purged range is overwritten with zeros, made durable, and then its blocks are
//!   released (`fallocate` punch hole, where the file system supports it). Ranges are never
//!   reused (packs are append-only), so erasing needs no lock against writers; a reader that
//!   raced it finds bytes that no longer match their hash and treats the payload as gone.
//!
//! The pending erasures are sled keys written in the same batch as the tombstone or the new
//! version that purges them; the store erases them right after the batch is durable, and on
//! every open before anything is served, so a `kill -9` in the middle is finished on restart.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

/// A pack grows past this only within one batch; the next batch starts a new pack.
pub const SEGMENT_BYTES_SOFT_MAX: u64 = 64 * 1024 * 1024;
/// Zeros written per call when erasing.
const ZEROS_CHUNK: usize = 64 * 1024;
/// Directory under the data directory.
pub const PAYLOADS_DIR: &str = "payloads";

/// Where one payload is: pack number, byte offset, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
}

impl Location {
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// The pack files of one node.
pub struct Packs {
    dir: PathBuf,
    files: RwLock<BTreeMap<u32, Arc<File>>>,
    /// The pack appended to and its length.
    tail: Mutex<(u32, u64)>,
}

impl std::fmt::Debug for Packs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packs").field("dir", &self.dir).finish()
    }
}

fn segment_name(segment: u32) -> String {
    format!("{segment:08}.pack")
}

fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".pack")?;
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Packs {
    /// Opens `dir` (created 0700 if missing). `committed` is the committed length of every pack
    /// as sled knows it: longer packs are cut back, packs sled does not know are removed.
    pub fn open(dir: &Path, committed: &BTreeMap<u32, u64>) -> io::Result<Packs> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut changed = false;
        for item in fs::read_dir(dir)? {
            let item = item?;
            let name = item.file_name();
            let Some(segment) = name.to_str().and_then(parse_segment_name) else {
                continue;
            };
            let path = item.path();
            match committed.get(&segment) {
                None => {
                    tracing::info!(pack = %path.display(), "removing a pack no batch committed");
                    fs::remove_file(&path)?;
                    changed = true;
                }
                Some(&len) => {
                    let file = OpenOptions::new().write(true).open(&path)?;
                    if file.metadata()?.len() > len {
                        tracing::info!(pack = %path.display(), len, "cutting a pack back to its committed length");
                        file.set_len(len)?;
                        file.sync_all()?;
                    }
                }
            }
        }
        if changed {
            sync_dir(dir)?;
        }
        let tail = committed
            .iter()
            .next_back()
            .map_or((1, 0), |(s, len)| (*s, *len));
        Ok(Packs {
            dir: dir.to_path_buf(),
            files: RwLock::new(BTreeMap::new()),
            tail: Mutex::new(tail),
        })
    }

    fn path(&self, segment: u32) -> PathBuf {
        self.dir.join(segment_name(segment))
    }

    /// The open file of `segment`; `create` makes it (and syncs the directory) if missing.
    fn file(&self, segment: u32, create: bool) -> io::Result<Arc<File>> {
        if let Some(f) = self
            .files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&segment)
        {
            return Ok(f.clone());
        }
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = files.get(&segment) {
            return Ok(f.clone());
        }
        let path = self.path(segment);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .mode(0o600)
            .open(&path)?;
        if !existed {
            sync_dir(&self.dir)?;
        }
        let file = Arc::new(file);
        files.insert(segment, file.clone());
        Ok(file)
    }

    /// Appends `bytes` (the payloads of one batch, back to back) and makes them durable.
    /// Returns the pack and offset they start at. Callers hold the store's write lock.
    pub fn append(&self, bytes: &[u8]) -> io::Result<(u32, u64)> {
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut segment, mut offset) = *tail;
        if offset >= SEGMENT_BYTES_SOFT_MAX {
            segment += 1;
            offset = 0;
        }
        let file = self.file(segment, true)?;
        file.write_all_at(bytes, offset)?;
        file.sync_data()?;
        *tail = (segment, offset + bytes.len() as u64);
        Ok((segment, offset))
    }

    /// Takes back an append whose sled batch failed: the pack is cut back to `offset`.
    pub fn abandon(&self, segment: u32, offset: u64) {
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let cut = self
            .file(segment, false)
            .and_then(|f| f.set_len(offset).and_then(|()| f.sync_all()));
        if let Err(e) = cut {
            tracing::error!(error = %e, segment, "could not cut back an abandoned pack append; it is cut on the next start");
        }
        *tail = (segment, offset);
    }

    /// The bytes at `loc`; `None` when the pack or the range is missing.
    pub fn read(&self, loc: Location) -> io::Result<Option<Vec<u8>>> {
        let file = match self.file(loc.segment, false) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; loc.len as usize];
        match file.read_exact_at(&mut buf, loc.offset) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Erases the bytes at `loc`: zeros, made durable, then the blocks released.
    pub fn erase(&self, loc: Location) -> io::Result<()> {
        let file = match self.file(loc.segment, false) {
            Ok(f) => f,
            // Already gone (a pack cut back on open never held committed bytes past its end).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let end = loc.end().min(len);
        if loc.offset >= end {
            return Ok(());
        }
        let zeros = [0u8; ZEROS_CHUNK];
        let mut at = loc.offset;
        while at < end {
            let n = ((end - at) as usize).min(ZEROS_CHUNK);
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        file.sync_data()?;
        // Give the blocks back; the zeros above already hold where this is not supported.
        let punch = rustix::fs::fallocate(
            &*file,
            rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
            loc.offset,
            end - loc.offset,
        );
        if let Err(e) = punch {
            tracing::debug!(error = %e, "punching a hole in a pack is not supported here; the range stays zeros");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_erase_and_cut_back_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path(), &BTreeMap::new()).unwrap();
        let (seg, off) = packs.append(b"hello canary world").unwrap();
        assert_eq!((seg, off), (1, 0));
        let loc = Location {
            segment: seg,
            offset: 6,
            len: 6,
        };
        assert_eq!(packs.read(loc).unwrap().unwrap(), b"canary");
        packs.erase(loc).unwrap();
        assert_eq!(packs.read(loc).unwrap().unwrap(), vec![0u8; 6]);
        let on_disk = fs::read(dir.path().join(segment_name(1))).unwrap();
        assert_eq!(&on_disk[..6], b"hello ");
        assert!(!on_disk.windows(6).any(|w| w == b"canary"));
        // Erasing again, or past the end, is harmless.
        packs.erase(loc).unwrap();
        packs
            .erase(Location {
                segment: 9,
                offset: 0,
                len: 4,
            })
            .unwrap();
        // An uncommitted tail is cut back; an unknown pack is removed.
        let (_, off2) = packs.append(b"uncommitted").unwrap();
        assert_eq!(off2, 18);
        fs::write(dir.path().join(segment_name(7)), b"stray").unwrap();
        drop(packs);
        let committed = BTreeMap::from([(1u32, 18u64)]);
        let packs = Packs::open(dir.path(), &committed).unwrap();
        assert_eq!(
            fs::metadata(dir.path().join(segment_name(1)))
                .unwrap()
                .len(),
            18
        );
        assert!(!dir.path().join(segment_name(7)).exists());
        assert_eq!(packs.append(b"next").unwrap(), (1, 18));
        // Reading past the end is "missing", not an error.
        assert_eq!(
            packs
                .read(Location {
                    segment: 1,
                    offset: 100,
                    len: 4
                })
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_full_pack_rolls_over_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let committed = BTreeMap::from([(3u32, SEGMENT_BYTES_SOFT_MAX)]);
        fs::File::create(dir.path().join(segment_name(3)))
            .unwrap()
            .set_len(SEGMENT_BYTES_SOFT_MAX)
            .unwrap();
        let packs = Packs::open(dir.path(), &committed).unwrap();
        assert_eq!(packs.append(b"x").unwrap(), (4, 0));
    }
}
