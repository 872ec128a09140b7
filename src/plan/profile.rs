//! What the planner knows of an adapter, read once from wgpu's description of it.

use crate::elem::HalfPath;
use std::fmt;

use crate::error::{Error, Result};

/// Invocations per workgroup of every convgrad kernel (the WGSL `WG` override).
pub(crate) const WORKGROUP: u32 = 64;

/// The two kinds of adapter the tuned kernels are shaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceClass {
    /// A CPU implementation (lavapipe, SwiftShader): each invocation is a SIMD lane, every
    /// storage-buffer load runs lane by lane, and a few hundred independent sums fill the machine.
    Cpu,
    /// A GPU: thousands of lanes in flight, loads served by wide memory transactions.
    Gpu,
}

impl DeviceClass {
    /// `cpu` or `gpu`, as `CONVGRAD_PROFILE` and `convgrad info` spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }

    /// The class named `cpu` or `gpu` (case-insensitive).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            _ => Err(Error::InvalidOption {
                what: "device profile (CONVGRAD_PROFILE)",
                got: name.to_string(),
                expected: "cpu or gpu",
            }),
        }
    }

    /// The class `CONVGRAD_PROFILE` asks for: `None` when unset or empty (detect it).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] when it is set to anything but `cpu` or `gpu`.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("CONVGRAD_PROFILE") {
            Ok(v) if !v.trim().is_empty() => Self::from_name(&v).map(Some),
            _ => Ok(None),
        }
    }
}

/// The facts about an adapter that the plans depend on, and nothing else: a plan is a pure function
/// of the layer, this profile and the [`Strategy`](crate::plan::Strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdapterProfile {
    /// What the tiles are shaped for.
    pub class: DeviceClass,
    /// Whether `class` was detected from the adapter (`false`: overridden).
    pub detected: bool,
    /// The subgroup size the tuned kernels round their tiles to when the first 8 lanes of a subgroup
    /// load what all lanes need and broadcast it (`None`: each lane loads its own).
    pub subgroup_sharing: Option<u32>,
    /// `max_storage_buffer_binding_size`: larger work is split along the batch.
    pub max_binding_bytes: u64,
    /// Whether the generated code keeps its long straight-line stretches in basic blocks of one input
    /// row each. SwiftShader's shader compiler needs time and memory that grow much faster than
    /// linearly with a basic block's length: the several-row forward tile of the seed layer's input
    /// gradient (eight input rows of about 200 multiply-adds each) ran past 6 GB compiling there, and
    /// compiles in 1 s and 180 MB fenced per row. lavapipe ran the fenced tile about 1.5× slower (the
    /// seed input gradient, 2.6 → 4.0 ms in interleaved runs), so only that driver gets it.
    pub fence_blocks: bool,
    /// `max_compute_workgroup_storage_size`: workgroup memory a kernel may declare. WebGPU guarantees
    /// 16 KiB; native adapters usually offer 32 KiB or more.
    pub workgroup_bytes: u32,
    /// How the kernels read and write `f16` tensors: the best path the adapter offers unless forced
    /// ([`AdapterProfile::with_half_path`]).
    pub half: HalfPath,
    /// Whether the adapter offers native `f16` (`SHADER_F16`).
    pub f16_native: bool,
    /// Whether the adapter allows WGSL's `pack2x16float` / `unpack2x16float`.
    pub f16_packed: bool,
}

/// What WebGPU guarantees every adapter: the profile's defaults until the adapter says more.
pub const WEBGPU_WORKGROUP_BYTES: u32 = 16 * 1024;

impl AdapterProfile {
    /// The profile of an adapter of device type `is_cpu`, with subgroups of `subgroups` = (min, max)
    /// lanes where the device has subgroup operations, and storage bindings of at most
    /// `max_binding_bytes`; `class` overrides the detected class.
    ///
    /// Subgroups share loads only in the CPU class: there every load runs lane by lane and a
    /// broadcast is a register shuffle, so one load serves eight (measured on lavapipe,
    /// docs/BENCHMARKS.md); on a GPU the lanes' loads are one memory transaction already. Sharing needs
    /// at least 8 lanes (the loads of the first 8 are shared) and whole subgroups in a workgroup.
    #[must_use]
    pub fn new(
        is_cpu: bool,
        subgroups: Option<(u32, u32)>,
        max_binding_bytes: u64,
        class: Option<DeviceClass>,
    ) -> Self {
        let detected = if is_cpu { DeviceClass::Cpu } else { DeviceClass::Gpu };
        let class = class.unwrap_or(detected);
        let subgroup_sharing = subgroups
            .filter(|&(min, max)| class == DeviceClass::Cpu && min >= 8 && max <= WORKGROUP && max.is_power_of_two())
            .map(|(_, max)| max);
        Self {
            class,
            detected: class == detected,
            subgroup_sharing,
            max_binding_bytes,
            fence_blocks: false,
            workgroup_bytes: WEBGPU_WORKGROUP_BYTES,
            half: HalfPath::Bits,
            f16_native: false,
            f16_packed: false,
        }
    }

    /// This profile on an adapter that offers native `f16` (`native`) and the pack builtins
    /// (`packed`), reading and writing `f16` on the best of the paths.
    #[must_use]
    pub fn with_half(mut self, native: bool, packed: bool) -> Self {
        (self.f16_native, self.f16_packed) = (native, packed);
        self.half = HalfPath::best(native, packed);
        self
    }

    /// This profile with `f16` read and written on `path` (tests force each path the adapter offers).
    ///
    /// # Errors
    /// [`Error::DType`] when the adapter does not offer `path`.
    pub fn with_half_path(mut self, path: HalfPath) -> Result<Self> {
        if !HalfPath::offered(self.f16_native, self.f16_packed).contains(&path) {
            return Err(Error::DType {
                what: "half-precision path".into(),
                expected: HalfPath::offered(self.f16_native, self.f16_packed)
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(" or "),
                got: format!("{} (this adapter does not offer it)", path.name()),
            });
        }
        self.half = path;
        Ok(self)
    }

    /// This profile with the adapter's own workgroup-memory limit.
    #[must_use]
    pub fn with_workgroup_bytes(mut self, bytes: u32) -> Self {
        self.workgroup_bytes = bytes;
        self
    }

    /// This profile with [`AdapterProfile::fence_blocks`] set as the adapter's driver needs it:
    /// SwiftShader's, found by its adapter name (`SwiftShader Device (Subzero)`).
    #[must_use]
    pub fn for_driver(mut self, adapter_name: &str) -> Self {
        self.fence_blocks = adapter_name.to_ascii_lowercase().contains("swiftshader");
        self
    }

    /// This profile with [`AdapterProfile::fence_blocks`] on: for adapters known to run on
    /// SwiftShader without saying so by name, such as a browser's WebGPU fallback adapter (Chromium's
    /// is SwiftShader, and WebGPU gives pages an empty name).
    #[must_use]
    pub fn fenced(mut self) -> Self {
        self.fence_blocks = true;
        self
    }

    /// Independent partial sums the split weight gradient aims for: enough to keep every lane busy.
    /// A CPU adapter runs a few hundred lanes at once (more only adds partial results to sum); a GPU
    /// wants tens of thousands of invocations in flight.
    #[must_use]
    pub fn split_target(&self) -> usize {
        match self.class {
            DeviceClass::Cpu => 512,
            DeviceClass::Gpu => 16_384,
        }
    }

    /// Workgroups the GEMM weight gradient aims for (`src/plan/gemm.rs`): a few per multiprocessor of a
    /// large GPU (an H100 has 132); a CPU adapter runs one workgroup per core at a time.
    #[must_use]
    pub fn gemm_split_target(&self) -> usize {
        match self.class {
            DeviceClass::Cpu => 32,
            DeviceClass::Gpu => 1024,
        }
    }

    /// Elements of `f32` one kernel binding holds.
    pub(crate) fn binding_elements(&self) -> usize {
        usize::try_from(self.max_binding_bytes / 4).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for AdapterProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.class.name())?;
        if !self.detected {
            write!(f, " (forced)")?;
        }
        match self.subgroup_sharing {
            Some(sg) => write!(f, ", subgroups of {sg} share loads")?,
            None => write!(f, ", per-lane loads")?,
        }
        match self.class {
            DeviceClass::Cpu => write!(f, ", register tiles, split-K target {} sums", self.split_target())?,
            DeviceClass::Gpu => write!(f, ", GEMM kernels, split-K target {} workgroups", self.gemm_split_target())?,
        }
        write!(
            f,
            ", binding {} MiB, workgroup memory {} KiB",
            self.max_binding_bytes >> 20,
            self.workgroup_bytes >> 10
        )?;
        if self.fence_blocks {
            f.write_str(", fenced basic blocks")?;
        }
        write!(f, ", f16 by {}", self.half.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_needs_the_cpu_class_and_subgroups_of_8_to_64() {
        let lavapipe = AdapterProfile::new(true, Some((8, 8)), 128 << 20, None);
        assert_eq!((lavapipe.class, lavapipe.subgroup_sharing, lavapipe.detected), (DeviceClass::Cpu, Some(8), true));
        // SwiftShader's subgroups of 4 are too narrow to share the loads of 8 lanes.
        assert_eq!(AdapterProfile::new(true, Some((4, 4)), 1 << 30, None).subgroup_sharing, None);
        // The GPU profile forced on lavapipe: the plans a discrete GPU gets.
        let forced = AdapterProfile::new(true, Some((8, 8)), 128 << 20, Some(DeviceClass::Gpu));
        assert_eq!((forced.class, forced.subgroup_sharing, forced.detected), (DeviceClass::Gpu, None, false));
        assert_eq!(AdapterProfile::new(false, Some((32, 32)), 1 << 30, None).subgroup_sharing, None);
        assert_eq!(AdapterProfile::new(false, None, 1 << 30, Some(DeviceClass::Cpu)).subgroup_sharing, None);
    }

    #[test]
    fn class_names_round_trip_and_bad_ones_are_errors() {
        for c in [DeviceClass::Cpu, DeviceClass::Gpu] {
            assert_eq!(DeviceClass::from_name(c.name()), Ok(c));
        }
        assert_eq!(DeviceClass::from_name(" GPU "), Ok(DeviceClass::Gpu));
        assert!(matches!(DeviceClass::from_name("fast"), Err(Error::InvalidOption { .. })));
    }
}
