//! What a tuned choice is keyed on: the exact layer and operation ([`LayerKey`]), and the adapter and
//! the code it was measured with ([`fingerprint`]). Nothing is rounded or bucketed: a layer of 104
//! channels and one of 128 are two entries, and a new driver, a new release or changed kernel sources
//! tune again.

use std::fmt;

use crate::geometry::{Conv2dGeometry, Layout};
use crate::plan::{AdapterProfile, Op};

/// The exact layer an operation runs: every size, the stride, the four paddings, the dilation, the
/// groups and the layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerKey(String);

impl LayerKey {
    /// The key of `op` on `geo`.
    #[must_use]
    pub fn new(op: Op, geo: &Conv2dGeometry) -> Self {
        let pr = &geo.params;
        let pd = &geo.pad;
        let layout = if pr.layout == Layout::Nchw { "nchw" } else { "nhwc" };
        LayerKey(format!(
            "{} n{} c{} h{} w{} k{} s{} t{} stride{},{} pad{},{},{},{} dil{},{} g{} {layout}",
            op.name(),
            geo.n,
            geo.c,
            geo.h,
            geo.w,
            geo.k,
            geo.s,
            geo.t,
            pr.stride[0],
            pr.stride[1],
            pd.top,
            pd.bottom,
            pd.left,
            pd.right,
            pr.dilation[0],
            pr.dilation[1],
            pr.groups
        ))
    }

    /// The key as written in the cache file.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LayerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The code that decides what a choice runs: every kernel source, the WGSL generator and the planners.
/// A change to any of them makes earlier measurements stale.
const CODE: &[&str] = &[
    include_str!("../gpu/tiled.rs"),
    include_str!("../gpu/ops.rs"),
    include_str!("../plan/mod.rs"),
    include_str!("../plan/forward.rs"),
    include_str!("../plan/weight_grad.rs"),
    include_str!("../plan/input_grad.rs"),
    include_str!("../plan/gemm.rs"),
    include_str!("../plan/variant.rs"),
    include_str!("../plan/loops.rs"),
    include_str!("../plan/profile.rs"),
];

/// The offset basis of [`fnv`].
pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a from `h` (start at [`FNV_START`]): a hash whose value does not change between Rust
/// releases (unlike std's).
pub(crate) fn fnv(bytes: impl IntoIterator<Item = u8>, mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The hash of [`CODE`] and of the kernel sources.
#[must_use]
pub fn code_hash() -> u64 {
    let mut h = FNV_START;
    let kernels = crate::gpu::kernel_sources();
    for s in CODE.iter().chain(kernels.iter()) {
        h = fnv(s.bytes().chain([0]), h);
    }
    h
}

/// The adapter a choice was measured on and the code it ran: name, vendor and device ids, driver,
/// driver info, backend, the profile the plans were made for, the crate version and [`code_hash`].
#[must_use]
pub fn fingerprint(info: &wgpu::AdapterInfo, profile: &AdapterProfile) -> String {
    let text = format!(
        "{}|{:04x}|{:04x}|{}|{}|{:?}|{profile:?}|convgrad {}|{:016x}",
        info.name,
        info.vendor,
        info.device,
        info.driver,
        info.driver_info,
        info.backend,
        env!("CARGO_PKG_VERSION"),
        code_hash()
    );
    // Tabs and newlines would break the cache file's lines.
    text.replace(['\t', '\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Conv2dParams;

    #[test]
    fn layers_a_bucketing_tuner_would_merge_get_separate_keys() {
        let p = Conv2dParams::new().padding(1, 1);
        let a = Conv2dGeometry::new(8, 104, [28, 28], 64, [3, 3], p).unwrap();
        let b = Conv2dGeometry::new(8, 128, [28, 28], 64, [3, 3], p).unwrap();
        assert_ne!(LayerKey::new(Op::Forward, &a), LayerKey::new(Op::Forward, &b));
        // The batch, the layout, one side's padding and the op are each part of the key.
        let n = Conv2dGeometry::new(9, 104, [28, 28], 64, [3, 3], p).unwrap();
        let nhwc = Conv2dGeometry::new(8, 104, [28, 28], 64, [3, 3], p.layout(Layout::Nhwc)).unwrap();
        let side =
            Conv2dGeometry::new(8, 104, [28, 28], 64, [3, 3], Conv2dParams::new().padding_sides(1, 2, 1, 1)).unwrap();
        let keys = [
            LayerKey::new(Op::Forward, &a),
            LayerKey::new(Op::Forward, &n),
            LayerKey::new(Op::Forward, &nhwc),
            LayerKey::new(Op::Forward, &side),
            LayerKey::new(Op::WeightGrad, &a),
        ];
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(keys[0].as_str(), "forward n8 c104 h28 w28 k64 s3 t3 stride1,1 pad1,1,1,1 dil1,1 g1 nchw");
    }

    #[test]
    fn a_changed_driver_string_changes_the_fingerprint() {
        let info = wgpu::AdapterInfo {
            name: "llvmpipe".into(),
            vendor: 0x10005,
            device: 0,
            device_type: wgpu::DeviceType::Cpu,
            driver: "llvmpipe".into(),
            driver_info: "Mesa 22.3.6".into(),
            backend: wgpu::Backend::Vulkan,
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, wgpu::Backend::Vulkan)
        };
        let profile = AdapterProfile::new(true, Some((8, 8)), 128 << 20, None);
        let a = fingerprint(&info, &profile);
        let b = fingerprint(&wgpu::AdapterInfo { driver_info: "Mesa 23.0.0".into(), ..info.clone() }, &profile);
        assert_ne!(a, b);
        let gpu = AdapterProfile::new(true, Some((8, 8)), 128 << 20, Some(crate::DeviceClass::Gpu));
        assert_ne!(a, fingerprint(&info, &gpu));
        assert_eq!(a, fingerprint(&info, &profile));
    }
}
