//! Device buffers kept for reuse by a context: read-back staging buffers and operations'
//! temporaries, each pool bounded in bytes.

use std::sync::{Arc, Mutex};

/// Device buffers kept for reuse.
pub(crate) type Pool = Arc<Mutex<Vec<wgpu::Buffer>>>;

/// Puts `buf` in `pool`, dropping the largest buffers while the pool holds more than `cap` bytes.
pub(crate) fn give_back(pool: &Pool, buf: wgpu::Buffer, cap: u64) {
    let mut pool = pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    pool.push(buf);
    pool.sort_by_key(wgpu::Buffer::size);
    while pool.iter().map(wgpu::Buffer::size).sum::<u64>() > cap {
        pool.pop();
    }
}

/// Staging buffers kept for reuse, and the most bytes they may hold together.
pub(crate) const STAGING_POOL_BYTES: u64 = 64 << 20;

/// The most bytes of temporaries kept for reuse. A new buffer costs its allocation and wgpu's zero
/// fill before first use (on lavapipe about 20 ms of the stem layer's 54 MB spread dY); a reused one
/// neither, and the kernels write every element of a temporary before reading it.
pub(crate) const TEMP_POOL_BYTES: u64 = 128 << 20;
