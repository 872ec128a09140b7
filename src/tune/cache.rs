//! The file that keeps tuned choices between processes.
//!
//! A text file, one choice a line, so that a person can read it and a tool can diff it:
//!
//! ```text
//! convgrad-tune-cache 1
//! <fingerprint hash>\t<layer key>\t<strategy key>\t<median ms>
//! ...
//! end <number of entries>
//! ```
//!
//! The fingerprint ([`fingerprint`](super::fingerprint)) is stored as its 64-bit hash. A file with
//! another first line, a line that does not parse, or a missing or wrong `end` line (a write cut short)
//! is ignored with a warning (and set aside, renamed with `.corrupt` added, by the next writer), and
//! the layers are tuned again: never a crash, never a plan read from a broken line. Writers merge
//! their picks into the file under a lock file and replace it by renaming a temporary of their own
//! over it, so a reader sees the old file or the new one, whole ([`Cache::save`]). A path that is not
//! a regular file, or larger than [`MAX_FILE_BYTES`], is refused with a warning and left as it is.
//! Native targets; in the browser the choices stay in memory ([`Cache::export`] and
//! [`Cache::import`] let a page keep them).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::plan::Strategy;

/// The first line of a cache file of this version.
pub const HEADER: &str = "convgrad-tune-cache 1";

/// One tuned choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The chosen strategy.
    pub strategy: Strategy,
    /// Its median when it was measured, in milliseconds.
    pub median_ms: f64,
}

/// Tuned choices by (fingerprint hash, layer key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cache {
    entries: BTreeMap<(u64, String), Entry>,
}

/// The hash a fingerprint is stored as.
#[must_use]
pub fn fingerprint_hash(fingerprint: &str) -> u64 {
    super::key::fnv(fingerprint.bytes(), super::key::FNV_START)
}

impl Cache {
    /// The choice for `layer` measured on `fingerprint`.
    #[must_use]
    pub fn get(&self, fingerprint: &str, layer: &str) -> Option<&Entry> {
        self.entries.get(&(fingerprint_hash(fingerprint), layer.to_string()))
    }

    /// Keeps a choice.
    pub fn insert(&mut self, fingerprint: &str, layer: &str, entry: Entry) {
        self.entries.insert((fingerprint_hash(fingerprint), layer.to_string()), entry);
    }

    /// Entries kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cache as the file's text.
    #[must_use]
    pub fn export(&self) -> String {
        let mut out = format!("{HEADER}\n");
        for ((fp, layer), e) in &self.entries {
            out += &format!("{fp:016x}\t{layer}\t{}\t{}\n", e.strategy.key(), e.median_ms);
        }
        out += &format!("end {}\n", self.entries.len());
        out
    }

    /// A cache from the file's text.
    ///
    /// # Errors
    /// What is wrong with the first line that does not parse.
    pub fn import(text: &str) -> Result<Self, String> {
        let mut lines = text.split_inclusive('\n');
        if lines.next() != Some(&format!("{HEADER}\n")) {
            return Err(format!("the first line is not {HEADER:?}"));
        }
        let mut cache = Cache::default();
        for (i, line) in lines.enumerate() {
            let Some(line) = line.strip_suffix('\n') else {
                return Err(format!("line {} is cut short", i + 2));
            };
            if let Some(count) = line.strip_prefix("end ") {
                if count.parse::<usize>().ok() != Some(cache.len()) {
                    return Err(format!("the end line says {count} entries, the file has {}", cache.len()));
                }
                return Ok(cache);
            }
            let bad = |what: &str| format!("line {}: {what}: {line:?}", i + 2);
            let f: Vec<&str> = line.split('\t').collect();
            let [fp, layer, strategy, ms] = f[..] else { return Err(bad("not four fields")) };
            let fp = u64::from_str_radix(fp, 16).map_err(|_| bad("not a fingerprint hash"))?;
            let strategy = Strategy::from_key(strategy).map_err(|e| bad(&e.to_string()))?;
            let median_ms =
                ms.parse::<f64>().ok().filter(|m| m.is_finite() && *m >= 0.0).ok_or_else(|| bad("not a time"))?;
            if layer.is_empty() {
                return Err(bad("no layer"));
            }
            cache.entries.insert((fp, layer.to_string()), Entry { strategy, median_ms });
        }
        Err("no end line: the file was cut short".into())
    }

    /// Forgets the choice for `layer` on `fingerprint` (a stale entry), returning it.
    pub fn remove(&mut self, fingerprint: &str, layer: &str) -> Option<Entry> {
        self.entries.remove(&(fingerprint_hash(fingerprint), layer.to_string()))
    }

    /// Adds every entry of `other` that this cache lacks (its own entries win).
    pub fn absorb(&mut self, other: Cache) {
        for (k, e) in other.entries {
            self.entries.entry(k).or_insert(e);
        }
    }

    /// The cache in `path`: empty where there is no file. Where the file is unreadable, corrupt, not a
    /// regular file or larger than [`MAX_FILE_BYTES`], empty too, with a warning; the file is left as
    /// it is (only a writer, [`Cache::save`], sets a corrupt file aside).
    #[must_use]
    pub fn load(path: &Path) -> (Self, Option<String>) {
        match read(path) {
            Ok(None) => (Cache::default(), None),
            Ok(Some(Ok(c))) => (c, None),
            Ok(Some(Err(why))) => (
                Cache::default(),
                Some(format!(
                    "the tuning cache {} is not usable ({why}); its layers run the planner's choices, and the \
                     file is set aside when a new pick is kept",
                    path.display()
                )),
            ),
            Err(why) => (Cache::default(), Some(why)),
        }
    }

    /// Keeps this cache's entries in the file `path`, merged with what the file holds now (this cache's
    /// entries win), and returns the merged cache. Any number of writers, threads or processes, may
    /// save to one path at once: each holds the lock file `PATH.lock` while it reads, merges and
    /// replaces, writes its own temporary file (named by process and a per-process counter) beside
    /// `path`, and renames it over `path`, so a reader sees the old file or the new one, whole, and no
    /// writer's entries are lost. A corrupt file is set aside (renamed with `.corrupt` added) first.
    /// A `path` that is not a regular file, or larger than [`MAX_FILE_BYTES`], is never replaced.
    ///
    /// # Errors
    /// Why nothing was written, as a sentence: the file system's errors, or the refusal above.
    pub fn save(&self, path: &Path) -> Result<Cache, String> {
        let io = |what: &str, e: std::io::Error| format!("cannot {what} for the tuning cache {}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("make its directory", e))?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("open the lock file", e))?;
        lock.lock().map_err(|e| io("lock the lock file", e))?;
        let mut merged = self.clone();
        match read(path)? {
            None => {}
            Some(Ok(on_disk)) => merged.absorb(on_disk),
            Some(Err(_)) => {
                let aside = PathBuf::from(format!("{}.corrupt", path.display()));
                std::fs::rename(path, &aside).map_err(|e| io("set the corrupt file aside", e))?;
            }
        }
        static WRITER: AtomicU64 = AtomicU64::new(0);
        let n = WRITER.fetch_add(1, Ordering::Relaxed);
        let tmp = PathBuf::from(format!("{}.{}-{n}.tmp", path.display(), std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(merged.export().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("write the new file", e));
        }
        // Unlocked as `lock` closes, on return.
        Ok(merged)
    }
}

/// The largest cache file read or replaced: a cache convgrad writes holds an entry of about 100
/// bytes per tuned layer and op, so this is some 160,000 of them; anything larger is not ours.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The file at `path`, parsed: `None` where there is none; `Some(Err(why))` where its text is not a
/// cache. Errors (a sentence): not a regular file, larger than [`MAX_FILE_BYTES`], unreadable. Reads at
/// most `MAX_FILE_BYTES + 1` bytes whatever the file claims, so a device that never ends (a node
/// like `/dev/zero`) cannot exhaust memory.
fn read(path: &Path) -> Result<Option<Result<Cache, String>>, String> {
    let refused = |why: String| {
        format!(
            "the tuning cache {} is {why}: it is not read or replaced, and the tuned choices stay in memory",
            path.display()
        )
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the tuning cache {}: {e}", path.display())),
    };
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    let too_large = || refused(format!("larger than {MAX_FILE_BYTES} bytes, more than any cache convgrad writes"));
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the tuning cache {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(Some(String::from_utf8(bytes).map_err(|_| "it is not UTF-8".to_string()).and_then(|t| Cache::import(&t))))
}

/// Where the cache lives by default: `$CONVGRAD_TUNE_CACHE` if set, else
/// `$XDG_CACHE_HOME/convgrad/tuned.txt`, else `$HOME/.cache/convgrad/tuned.txt` (`None` without any).
#[must_use]
pub fn default_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("CONVGRAD_TUNE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("convgrad").join("tuned.txt")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("convgrad").join("tuned.txt")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Algorithm, GemmChoice, GemmShape};

    fn sample() -> Cache {
        let mut c = Cache::default();
        let split = GemmChoice {
            shape: Some(GemmShape::Narrow),
            splits: std::num::NonZeroU32::new(7),
            depth: None,
            double: false,
        };
        c.insert("adapter A", "forward n1 c3", Entry { strategy: Strategy::Auto, median_ms: 1.5 });
        c.insert(
            "adapter A",
            "weight-grad n1 c3",
            Entry { strategy: Strategy::Force(Algorithm::Gemm(split)), median_ms: 2.0 },
        );
        c.insert("adapter B", "forward n1 c3", Entry { strategy: Strategy::Reference, median_ms: 9.0 });
        c
    }

    #[test]
    fn a_cache_round_trips_through_its_text_and_keeps_the_split_count() {
        let c = sample();
        assert_eq!(Cache::import(&c.export()), Ok(c.clone()));
        assert_eq!(c.get("adapter B", "forward n1 c3").map(|e| e.strategy), Some(Strategy::Reference));
        assert!(c.get("adapter C", "forward n1 c3").is_none());
        assert!(c.export().contains("gemm-narrow:splits=7"));
    }

    #[test]
    fn corrupt_truncated_or_foreign_text_is_refused() {
        let text = sample().export();
        assert!(Cache::import(&text[..text.len() - 3]).is_err(), "cut in the end line");
        let cut = &text[..text.find("weight-grad").unwrap() + 4];
        assert!(Cache::import(cut).is_err(), "cut in an entry");
        assert!(Cache::import(&text.replace("end 3", "end 2")).is_err());
        assert!(Cache::import(&text.replace("gemm-narrow", "gemm-giant")).is_err());
        assert!(Cache::import(&text.replace("splits=7", "splits=7:double:double")).is_err());
        assert!(Cache::import(&text.replace("1.5", "fast")).is_err());
        assert!(Cache::import(&text.replace(HEADER, "convgrad-tune-cache 2")).is_err());
        assert!(Cache::import("{\"some\": \"json\"}\n").is_err());
        assert!(Cache::import("").is_err());
    }

    #[test]
    fn a_corrupt_file_is_set_aside_with_a_warning_and_a_saved_one_reloads() {
        let dir = std::env::temp_dir().join(format!("convgrad-cache-test-{}", std::process::id()));
        let path = dir.join("sub").join("tuned.txt");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(Cache::load(&path), (Cache::default(), None), "no file: empty, no warning");
        sample().save(&path).unwrap();
        assert_eq!(Cache::load(&path), (sample(), None));
        std::fs::write(&path, b"convgrad-tune-cache 1\n0123\tbroken").unwrap();
        let (c, warning) = Cache::load(&path);
        assert!(c.is_empty());
        assert!(warning.unwrap().contains("not usable"));
        assert!(path.exists(), "a reader leaves the file as it is");
        sample().save(&path).unwrap();
        assert!(dir.join("sub").join("tuned.txt.corrupt").exists(), "a writer sets it aside");
        assert_eq!(Cache::load(&path), (sample(), None));
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(Cache::load(&path).1.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
