//! `.npy` files in and out, with the header checked before any data is allocated.
//!
//! Reading validates the magic, the version, the dtype (float32 or float64, either byte order), the
//! shape and that the file holds exactly the bytes the shape declares, so a truncated file or an
//! enormous declared shape is refused without allocating for it. ndarray-npy then parses the data
//! (C or Fortran order). Writing goes to a temporary file beside the target, renamed into place only
//! once complete, so a failed command leaves no half-written output.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

/// An error about one file, already phrased for the user.
#[derive(Debug)]
pub struct FileError(pub String);

fn err(path: &Path, msg: impl std::fmt::Display) -> FileError {
    FileError(format!("{}: {msg}", path.display()))
}

/// What the header of a `.npy` file declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the first data byte.
    pub data_offset: usize,
}

/// Parses and checks the header in `bytes` (the whole file).
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, FileError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err(path, "not a .npy file (bad magic bytes)"));
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(err(path, format!("unsupported .npy format version {v}"))),
    };
    let end = start.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| err(path, "truncated header"))?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| err(path, "corrupt header (not text)"))?;
    let value_of = |key: &str| -> Result<&str, FileError> {
        let k = text
            .find(&format!("'{key}'"))
            .or_else(|| text.find(&format!("\"{key}\"")))
            .ok_or_else(|| err(path, format!("corrupt header: no '{key}' key")))?;
        let rest = &text[k + key.len() + 2..];
        let colon = rest.find(':').ok_or_else(|| err(path, format!("corrupt header after '{key}'")))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr_v = value_of("descr")?;
    let quote = descr_v.chars().next().filter(|c| *c == '\'' || *c == '"');
    let descr = quote
        .and_then(|q| descr_v[1..].split(q).next())
        .ok_or_else(|| err(path, "corrupt header: 'descr' is not a string (structured dtypes are not supported)"))?
        .to_string();
    let fo = value_of("fortran_order")?;
    let fortran_order = if fo.starts_with("True") {
        true
    } else if fo.starts_with("False") {
        false
    } else {
        return Err(err(path, "corrupt header: 'fortran_order' is neither True nor False"));
    };
    let sv = value_of("shape")?;
    let inner = sv
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err(path, "corrupt header: 'shape' is not a tuple"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| err(path, format!("corrupt header: bad shape ({inner})")))?;
    Ok(Header { descr, fortran_order, shape, data_offset: end })
}

/// Reads a float32 or float64 `.npy` file as f32, in any rank.
pub fn read_f32(path: &Path) -> Result<ArrayD<f32>, FileError> {
    let bytes = fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let h = parse_header(path, &bytes)?;
    let item = match h.descr.as_str() {
        "<f4" | ">f4" | "=f4" | "|f4" => 4,
        "<f8" | ">f8" | "=f8" | "|f8" => 8,
        d => {
            let kind = match d.trim_start_matches(['<', '>', '=', '|']).chars().next() {
                Some('i' | 'u') => "an integer",
                Some('b' | '?') => "a boolean",
                Some('c') => "a complex",
                Some('f') => "a floating-point",
                _ => "an unsupported",
            };
            return Err(err(path, format!("dtype '{d}' is {kind} type; convgrad reads float32 or float64 arrays")));
        }
    };
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(path, format!("shape {:?} overflows", h.shape)))?;
    if count == 0 {
        return Err(err(path, format!("shape {:?} has a zero-sized dimension", h.shape)));
    }
    let data = count.checked_mul(item).ok_or_else(|| err(path, format!("shape {:?} overflows", h.shape)))?;
    let have = bytes.len() - h.data_offset;
    if have != data {
        let what = if have < data { "truncated" } else { "corrupt" };
        return Err(err(
            path,
            format!("{what}: shape {:?} of {} needs {data} data bytes but the file has {have}", h.shape, h.descr),
        ));
    }
    let parse = |e: ndarray_npy::ReadNpyError| err(path, format!("cannot parse: {e}"));
    if item == 4 {
        ArrayD::<f32>::read_npy(bytes.as_slice()).map_err(parse)
    } else {
        let a = ArrayD::<f64>::read_npy(bytes.as_slice()).map_err(parse)?;
        // Computing in f32 rounds every value; a finite value beyond f32's range would become
        // infinite, which we refuse rather than clip.
        if let Some(v) = a.iter().find(|v| v.is_finite() && v.abs() > f64::from(f32::MAX)) {
            return Err(err(path, format!("value {v:e} does not fit in float32 (convgrad computes in float32)")));
        }
        Ok(a.mapv(|v| v as f32))
    }
}

/// Writes `a` as a float32 C-order `.npy` file, atomically: to a temporary file in the same folder,
/// then renamed over `path`.
pub fn write_f32(path: &Path, a: &ArrayD<f32>) -> Result<(), FileError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| err(path, "not a file name"))?;
    let tmp: PathBuf = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<(), String> {
        let file = fs::File::create(&tmp).map_err(|e| format!("cannot create: {e}"))?;
        let mut w = BufWriter::new(file);
        a.as_standard_layout().write_npy(&mut w).map_err(|e| format!("cannot write: {e}"))?;
        w.flush().map_err(|e| format!("cannot write: {e}"))?;
        w.get_ref().sync_all().map_err(|e| format!("cannot write: {e}"))?;
        fs::rename(&tmp, path).map_err(|e| format!("cannot rename into place: {e}"))
    })();
    result.map_err(|m| {
        let _ = fs::remove_file(&tmp);
        err(path, m)
    })
}
