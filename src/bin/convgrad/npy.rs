//! `.npy` files in and out, with the header checked before any data is allocated.
//!
//! Reading validates the magic, the version, the dtype (float16, float32 or float64, either byte order), the
//! shape and that the file holds exactly the bytes the shape declares, so a truncated file or an
//! enormous declared shape is refused without allocating for it. ndarray-npy then parses the data
//! (C or Fortran order). Writing goes to a temporary file beside the target, renamed into place only
//! once complete, so a failed command leaves no half-written output.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use convgrad::Elem;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
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

/// Reads a float16, float32 or float64 `.npy` file, in any rank, as `f32` values (float16 widened
/// exactly) and the dtype to compute in: `F16` for float16 files, `F32` otherwise.
pub fn read(path: &Path) -> Result<(ArrayD<f32>, Elem), FileError> {
    let bytes = fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let h = parse_header(path, &bytes)?;
    let item = match h.descr.as_str() {
        "<f2" | ">f2" | "=f2" | "|f2" => 2,
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
            return Err(err(
                path,
                format!("dtype '{d}' is {kind} type; convgrad reads float16, float32 or float64 arrays"),
            ));
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
    if item == 2 {
        // ndarray-npy has no float16: the data is read here, in its byte order and memory order.
        let big = h.descr.starts_with('>');
        let values: Vec<f32> = bytes[h.data_offset..]
            .chunks_exact(2)
            .map(|b| {
                Elem::F16.to_f32(u32::from(if big {
                    u16::from_be_bytes([b[0], b[1]])
                } else {
                    u16::from_le_bytes([b[0], b[1]])
                }))
            })
            .collect();
        let shape = if h.fortran_order { IxDyn(&h.shape).f() } else { IxDyn(&h.shape).into_shape_with_order() };
        let a = ArrayD::from_shape_vec(shape, values).map_err(|e| err(path, format!("cannot parse: {e}")))?;
        return Ok((a.as_standard_layout().into_owned(), Elem::F16));
    }
    if item == 4 {
        ArrayD::<f32>::read_npy(bytes.as_slice()).map(|a| (a, Elem::F32)).map_err(parse)
    } else {
        let a = ArrayD::<f64>::read_npy(bytes.as_slice()).map_err(parse)?;
        // Computing in f32 rounds every value; a finite value beyond f32's range would become
        // infinite, which we refuse rather than clip.
        if let Some(v) = a.iter().find(|v| v.is_finite() && v.abs() > f64::from(f32::MAX)) {
            return Err(err(path, format!("value {v:e} does not fit in float32 (convgrad computes in float32)")));
        }
        Ok((a.mapv(|v| v as f32), Elem::F32))
    }
}

/// Writes `a` as a float32 C-order `.npy` file, atomically (see [`write`]).
pub fn write_f32(path: &Path, a: &ArrayD<f32>) -> Result<(), FileError> {
    write(path, a, Elem::F32)
}

/// The `.npy` type a result of `elem` is written as: float16 for f16; float32 for f32 and for bf16,
/// which `.npy` has no type for (every bf16 value is a float32, exactly).
pub fn npy_type(elem: Elem) -> &'static str {
    if elem == Elem::F16 { "float16" } else { "float32" }
}

/// Writes `a` (values of `elem`) as a C-order `.npy` file of [`npy_type`], atomically: to a temporary
/// file in the same folder, then renamed over `path`.
pub fn write(path: &Path, a: &ArrayD<f32>, elem: Elem) -> Result<(), FileError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| err(path, "not a file name"))?;
    let tmp: PathBuf = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<(), String> {
        let file = fs::File::create(&tmp).map_err(|e| format!("cannot create: {e}"))?;
        let mut w = BufWriter::new(file);
        if elem == Elem::F16 {
            write_f16(&mut w, a).map_err(|e| format!("cannot write: {e}"))?;
        } else {
            a.as_standard_layout().write_npy(&mut w).map_err(|e| format!("cannot write: {e}"))?;
        }
        w.flush().map_err(|e| format!("cannot write: {e}"))?;
        w.get_ref().sync_all().map_err(|e| format!("cannot write: {e}"))?;
        fs::rename(&tmp, path).map_err(|e| format!("cannot rename into place: {e}"))
    })();
    result.map_err(|m| {
        let _ = fs::remove_file(&tmp);
        err(path, m)
    })
}

/// A float16 `.npy` (format 1.0): the header dict padded with spaces to a multiple of 64 bytes, then
/// the values, little-endian, in C order (each rounded to nearest even: exact for f16 results).
fn write_f16(w: &mut impl Write, a: &ArrayD<f32>) -> std::io::Result<()> {
    let dims: Vec<String> = a.shape().iter().map(ToString::to_string).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f2', 'fortran_order': False, 'shape': {shape}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&u16::try_from(header.len()).map_err(std::io::Error::other)?.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    let data: Vec<u8> = a.iter().flat_map(|&v| (Elem::F16.from_f32(v) as u16).to_le_bytes()).collect();
    w.write_all(&data)
}
