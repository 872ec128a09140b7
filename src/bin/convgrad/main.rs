//! The `convgrad` command line: NumPy `.npy` files in and out, adapter info, a self-check, the filter
//! learning demo and the benchmark suite.

mod bench;
mod demo;
mod npy;
mod tune;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use convgrad::{AdapterOptions, Context, Conv2dParams, Elem, Layout, Op, Padding, Sides, Tensor};
use ndarray::{ArrayD, Ix1, Ix2, Ix3, Ix4};

/// Forward pass and gradients of 2-D convolution layers on the GPU (wgpu), checked against an f64
/// CPU reference.
#[derive(Debug, Parser)]
#[command(name = "convgrad", version, about, long_about = None)]
struct Cli {
    /// Use the first adapter whose name contains this (case-insensitive); also WGPU_ADAPTER_NAME.
    #[arg(long, global = true, value_name = "NAME")]
    adapter: Option<String>,
    /// Only consider this backend; also WGPU_BACKEND.
    #[arg(long, global = true, value_enum)]
    backend: Option<Backend>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Learn hidden filters by gradient descent with the GPU forward pass and weight gradient.
    Demo(demo::DemoArgs),
    /// Y = X ⊗ W (+ b): NCHW input, KCST weights (or a U×V image and K×S×T filters).
    Forward(ForwardArgs),
    /// dW = Σ_n Σ_p Σ_q X[.., p·sh+i·dh−ph, q·sw+j·dw−pw] · dY: the weight gradient.
    WeightGrad(WeightGradArgs),
    /// dX: the input gradient (transposed convolution).
    InputGrad(InputGradArgs),
    /// Y = conv_transpose2d(X, W) (+ b), as PyTorch: N×Cin×H×W input, Cin×Cout/G×S×T weights, output
    /// (H−1)·s − 2p + d·(S−1) + output_padding + 1 along each axis.
    ConvTranspose(ConvTransposeArgs),
    /// List the adapters and mark the one that would be used.
    Info,
    /// Check the chosen adapter against the f64 CPU reference and finite differences.
    Check(CheckArgs),
    /// Time the standard suite of layers.
    Bench(bench::BenchArgs),
    /// Measure every candidate plan of a suite's layers on this adapter and cache the fastest.
    Tune(tune::TuneArgs),
    /// Print the program an operation runs a layer with on this adapter: every pass and copy, each
    /// binding's bytes, the temporaries and the batch chunks. Runs nothing.
    Program(ProgramArgs),
}

#[derive(Debug, Args)]
struct ProgramArgs {
    /// The operation: forward, weight-grad or input-grad.
    #[arg(long, value_parser = parse_op, value_name = "forward|weight-grad|input-grad")]
    op: Op,
    /// The input's size N,C,H,W (in either layout: --layout says how it is stored).
    #[arg(long, value_parser = parse_dims::<4>, value_name = "N,C,H,W")]
    input: [usize; 4],
    /// The filters K and the kernel size: K,S,T.
    #[arg(long, value_parser = parse_dims::<3>, value_name = "K,S,T")]
    filters: [usize; 3],
    #[command(flatten)]
    conv: ConvFlags,
    /// Plan as if one storage binding held at most this many bytes (the adapter's limit otherwise):
    /// shows how a layer that passes it runs in batch chunks.
    #[arg(long, value_name = "BYTES")]
    binding_limit: Option<u64>,
}

fn parse_op(s: &str) -> Result<Op, String> {
    Op::from_name(s.trim()).ok_or_else(|| format!("'{s}' is not forward, weight-grad or input-grad"))
}

fn parse_dims<const N: usize>(s: &str) -> Result<[usize; N], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|_| format!("'{p}' is not a non-negative integer")))
        .collect::<Result<_, _>>()?;
    v.try_into().map_err(|v: Vec<usize>| format!("expected {N} numbers separated by commas, got {}", v.len()))
}

fn program(options: &AdapterOptions, a: &ProgramArgs) -> Result<ExitCode, CliError> {
    let mut ctx = context(options)?;
    if let Some(bytes) = a.binding_limit {
        ctx = ctx.with_binding_limit(bytes);
    }
    let [n, c, h, w] = a.input;
    let [k, s, t] = a.filters;
    let geo = convgrad::Conv2dGeometry::new(n, c, [h, w], k, [s, t], a.conv.params())?;
    let elem = a.conv.dtype.unwrap_or(Elem::F32);
    print!("{}", ctx.program(a.op, &geo, elem)?);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The operands' dtype: f32, f16, bf16, or all three (f16 and bf16 on the adapter's half path;
    /// CONVGRAD_HALF_PATH=native|packed|bits forces one).
    #[arg(long, default_value = "all", value_parser = parse_dtypes, value_name = "f32|f16|bf16|all")]
    dtype: Dtypes,
}

/// One dtype or all three.
#[derive(Debug, Clone)]
pub struct Dtypes(pub Vec<Elem>);

pub fn parse_dtypes(s: &str) -> Result<Dtypes, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Dtypes(vec![Elem::F32, Elem::F16, Elem::Bf16]));
    }
    parse_dtype(s).map(|e| Dtypes(vec![e]))
}

/// Stride, padding, dilation, groups and layout; each pair takes one number (both axes) or two (`2,1`).
#[derive(Debug, Args)]
struct ConvFlags {
    /// Stride: S or SH,SW.
    #[arg(long, default_value = "1", value_parser = parse_pair, value_name = "S[,S]", allow_negative_numbers = true)]
    stride: [usize; 2],
    /// Zero padding: P (every side), PH,PW (top and bottom, left and right), TOP,BOTTOM,LEFT,RIGHT,
    /// `same` (PyTorch's padding='same', stride 1: an even kernel's extra zero at the bottom/right), or
    /// `same-tf` (TensorFlow's SAME at any stride: output ⌈H/s⌉, the smaller half of the zeros first).
    #[arg(
        long,
        default_value = "0",
        value_parser = parse_padding,
        value_name = "P|PH,PW|T,B,L,R|same|same-tf",
        allow_negative_numbers = true
    )]
    padding: Padding,
    /// Dilation: D or DH,DW.
    #[arg(long, default_value = "1", value_parser = parse_pair, value_name = "D[,D]", allow_negative_numbers = true)]
    dilation: [usize; 2],
    /// Groups G (C and K divisible by G).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    groups: usize,
    /// Memory layout of the .npy files: nchw (weights K×C/G×S×T) or nhwc (channels last, weights
    /// K×S×T×C/G, as PyTorch's channels_last and TensorFlow).
    #[arg(long, value_enum, default_value = "nchw")]
    layout: LayoutArg,
    /// The dtype to compute in: f32, f16 or bf16 (inputs rounded to it on upload; products and sums
    /// in f32 whatever it is). Default: f16 when the input files are float16, else f32. The forward
    /// pass and input gradient are written as float16 for f16, float32 for f32 and bf16 (which .npy
    /// has no type for; every bf16 value is a float32); the weight gradient as float32.
    #[arg(long, value_parser = parse_dtype, value_name = "f32|f16|bf16")]
    dtype: Option<Elem>,
}

fn parse_dtype(s: &str) -> Result<Elem, String> {
    Elem::from_name(s).map_err(|e| e.to_string())
}

/// The dtype a command computes in: `--dtype`, else the input files' (float16 files compute in f16).
fn dtype_of(flag: Option<Elem>, inputs: &[(&Path, Elem)]) -> Result<Elem, CliError> {
    if let Some(e) = flag {
        return Ok(e);
    }
    let (first, e0) = inputs[0];
    match inputs.iter().find(|(_, e)| *e != e0) {
        None => Ok(e0),
        Some((p, e)) => Err(CliError(format!(
            "{} is {} but {} is {}: pass --dtype f32, f16 or bf16 to compute in one type",
            first.display(),
            npy::npy_type(e0),
            p.display(),
            npy::npy_type(*e)
        ))),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LayoutArg {
    Nchw,
    Nhwc,
}

impl ConvFlags {
    fn params(&self) -> Conv2dParams {
        let layout = match self.layout {
            LayoutArg::Nchw => Layout::Nchw,
            LayoutArg::Nhwc => Layout::Nhwc,
        };
        Conv2dParams {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            layout,
        }
    }

    /// An error for the single-channel (2-D image) forms, which have no channel axis to lay out.
    fn single_channel(&self) -> Result<(), CliError> {
        match self.layout {
            LayoutArg::Nchw => Ok(()),
            LayoutArg::Nhwc => Err(CliError(
                "--layout nhwc needs 4-D tensors (N×H×W×C); the single-channel form takes a 2-D image".into(),
            )),
        }
    }

    /// The names of the activation and weight shapes in this layout.
    fn letters(&self) -> (&'static str, &'static str, &'static str) {
        match self.layout {
            LayoutArg::Nchw => ("N×C×H×W", "N×K×P×Q", "K×C/G×S×T"),
            LayoutArg::Nhwc => ("N×H×W×C", "N×P×Q×K", "K×S×T×C/G"),
        }
    }
}

#[derive(Debug, Args)]
struct ForwardArgs {
    /// Input X: N×C×H×W, or U×V for one single-channel image.
    #[arg(long)]
    input: PathBuf,
    /// Weights W: K×(C/G)×S×T, or K×S×T single-channel filters.
    #[arg(long)]
    weight: PathBuf,
    /// Optional bias: K values.
    #[arg(long)]
    bias: Option<PathBuf>,
    #[command(flatten)]
    conv: ConvFlags,
    /// Where to write Y (float32): N×K×P×Q, or K×P×Q in the single-channel form.
    #[arg(long)]
    output: PathBuf,
}

#[derive(Debug, Args)]
struct WeightGradArgs {
    /// Input X: N×C×H×W, or U×V for one single-channel image.
    #[arg(long)]
    input: PathBuf,
    /// Output gradient dY: N×K×P×Q, or K×P×Q with a U×V input.
    #[arg(long)]
    grad_output: PathBuf,
    /// Kernel size S,T (one number for square kernels).
    #[arg(long, value_parser = parse_pair, value_name = "S,T")]
    kernel_size: [usize; 2],
    #[command(flatten)]
    conv: ConvFlags,
    /// Where to write dW (float32): K×(C/G)×S×T, or K×S×T in the single-channel form.
    #[arg(long)]
    output: PathBuf,
}

#[derive(Debug, Args)]
struct InputGradArgs {
    /// Output gradient dY: N×K×P×Q, or K×P×Q with K×S×T weights.
    #[arg(long)]
    grad_output: PathBuf,
    /// Weights W: K×(C/G)×S×T, or K×S×T single-channel filters.
    #[arg(long)]
    weight: PathBuf,
    /// Input size H,W (several sizes give the same output size when the stride is above 1).
    #[arg(long, value_parser = parse_pair, value_name = "H,W")]
    input_size: [usize; 2],
    #[command(flatten)]
    conv: ConvFlags,
    /// Where to write dX (float32): N×C×H×W, or H×W in the single-channel form.
    #[arg(long)]
    output: PathBuf,
}

#[derive(Debug, Args)]
struct ConvTransposeArgs {
    /// Input X: N×Cin×H×W (N×H×W×Cin with --layout nhwc).
    #[arg(long)]
    input: PathBuf,
    /// Weights W: Cin×(Cout/G)×S×T, PyTorch's ConvTranspose2d.weight (Cin×S×T×Cout/G with nhwc).
    #[arg(long)]
    weight: PathBuf,
    /// Optional bias: Cout values.
    #[arg(long)]
    bias: Option<PathBuf>,
    /// Output padding: O or OH,OW, rows and columns added after the output; each below its axis's
    /// stride or dilation.
    #[arg(long, default_value = "0", value_parser = parse_pair, value_name = "O[,O]", allow_negative_numbers = true)]
    output_padding: [usize; 2],
    /// Stride, padding (rows and columns taken off the full output: P, PH,PW or T,B,L,R), dilation,
    /// groups, layout and dtype, as for the other commands (`same` padding has no transposed form).
    #[command(flatten)]
    conv: ConvFlags,
    /// Where to write Y: N×Cout×Ho×Wo.
    #[arg(long)]
    output: PathBuf,
}

impl ConvTransposeArgs {
    fn params(&self) -> Result<convgrad::ConvTranspose2dParams, CliError> {
        let c = self.conv.params();
        let Padding::Explicit(padding) = c.padding else {
            return Err(CliError(
                "--padding same and same-tf have no transposed form (PyTorch refuses them too): give the rows \
                 and columns to take off, P, PH,PW or T,B,L,R"
                    .into(),
            ));
        };
        Ok(convgrad::ConvTranspose2dParams {
            stride: c.stride,
            padding,
            output_padding: self.output_padding,
            dilation: c.dilation,
            groups: c.groups,
            layout: c.layout,
        })
    }
}

fn conv_transpose(options: &AdapterOptions, a: &ConvTransposeArgs) -> Result<(), CliError> {
    let params = a.params()?;
    let (x, xe) = npy::read(&a.input)?;
    let (w, we) = npy::read(&a.weight)?;
    let mut dtypes = vec![(a.input.as_path(), xe), (a.weight.as_path(), we)];
    let b = match &a.bias {
        Some(p) => {
            let (b, be) = npy::read(p)?;
            dtypes.push((p.as_path(), be));
            Some(rank::<Ix1>(b, p, "a 1-D bias of Cout values")?)
        }
        None => None,
    };
    let elem = dtype_of(a.conv.dtype, &dtypes)?;
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let files: [(&Path, &[usize]); 2] = [(&a.input, &xs), (&a.weight, &ws)];
    let (xl, wl) = match a.conv.layout {
        LayoutArg::Nchw => ("N×Cin×H×W", "Cin×Cout/G×S×T"),
        LayoutArg::Nhwc => ("N×H×W×Cin", "Cin×S×T×Cout/G"),
    };
    let x4 = rank::<Ix4>(x, &a.input, &format!("an {xl} (4-D) input"))?;
    let w4 = rank::<Ix4>(w, &a.weight, &format!("{wl} (4-D) weights"))?;
    // Shapes are checked before a device is opened, so a bad file fails fast.
    params.geometry(convgrad_dims(&x4), convgrad_dims(&w4)).map_err(|e| shapes_err(e, &files))?;
    let ctx = context(options)?;
    let y = (|| {
        let (xt, wt) = (up(&ctx, &x4, elem)?, up(&ctx, &w4, elem)?);
        let bt = b.as_ref().map(|b| up(&ctx, b, elem)).transpose()?;
        ctx.download::<Ix4>(&ctx.conv_transpose(&xt, &wt, bt.as_ref(), &params)?)
    })()
    .map_err(|e| shapes_err(e, &files))?
    .into_dyn();
    npy::write(&a.output, &y, elem)?;
    report("transposed convolution", &a.output, y.shape(), elem, &ctx);
    Ok(())
}

fn parse_padding(s: &str) -> Result<Padding, String> {
    if s.trim().eq_ignore_ascii_case("same") {
        return Ok(Padding::Same);
    }
    if s.trim().eq_ignore_ascii_case("same-tf") {
        return Ok(Padding::SameTf);
    }
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let num = |p: &str| p.parse::<usize>().map_err(|_| format!("'{p}' is not a non-negative integer"));
    match parts.as_slice() {
        [a] => Ok(Padding::Explicit(Sides::symmetric(num(a)?, num(a)?))),
        [h, w] => Ok(Padding::Explicit(Sides::symmetric(num(h)?, num(w)?))),
        [t, b, l, r] => Ok(Padding::Explicit(Sides { top: num(t)?, bottom: num(b)?, left: num(l)?, right: num(r)? })),
        _ => Err(format!("expected 'same', 'same-tf', or one, two or four numbers separated by commas, got '{s}'")),
    }
}

fn parse_pair(s: &str) -> Result<[usize; 2], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let num = |p: &str| p.parse::<usize>().map_err(|_| format!("'{p}' is not a non-negative integer"));
    match parts.as_slice() {
        [a] => Ok([num(a)?; 2]),
        [a, b] => Ok([num(a)?, num(b)?]),
        _ => Err(format!("expected one number or two separated by a comma, got '{s}'")),
    }
}

/// A failure the user can act on: printed as one line, exit code 2.
#[derive(Debug)]
pub struct CliError(pub String);

impl From<npy::FileError> for CliError {
    fn from(e: npy::FileError) -> Self {
        CliError(e.0)
    }
}

impl From<convgrad::Error> for CliError {
    fn from(e: convgrad::Error) -> Self {
        CliError(e.to_string())
    }
}

fn main() -> ExitCode {
    oversubscribe_lavapipe();
    quiet_device_select();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli) {
        Ok(code) => code,
        Err(CliError(msg)) => {
            eprintln!("convgrad: error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// A command line clap refuses, as one line and exit code 2 like every other bad input (clap's own
/// report adds the usage and a hint over several lines); help and version print as clap has them.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("convgrad: error: {first} (convgrad help lists the commands, convgrad COMMAND --help the options)");
    ExitCode::from(2)
}

/// Gives Mesa's lavapipe two worker threads per CPU unless the user chose a number (LP_NUM_THREADS).
/// With its default of one per CPU, on the 2-vCPU machines this project is measured on, the small
/// layers' dispatches ran about 1.6× slower in some processes than in others; with two per CPU every
/// run was as fast as the fast ones, and the large layers did not change (docs/BENCHMARKS.md). Other
/// adapters ignore the variable.
fn oversubscribe_lavapipe() {
    if std::env::var_os("LP_NUM_THREADS").is_none() {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) * 2;
        // SAFETY: called first thing in main, before this process starts any other thread, so no
        // other thread can be reading the environment.
        unsafe { std::env::set_var("LP_NUM_THREADS", threads.to_string()) };
    }
}

/// Turns off Mesa's Vulkan device-selection layer unless the user configured it (MESA_VK_DEVICE_SELECT)
/// or chose for themselves (NODEVICE_SELECT). The layer is installed with mesa-vulkan-drivers and
/// loaded into every Vulkan program; it connects to the Wayland and X displays to put the display's GPU
/// first, and without a display (a server, CI, ssh) prints `error: XDG_RUNTIME_DIR is invalid or not
/// set in the environment.` twice per instance, on commands that then succeed. convgrad ranks the
/// adapters itself (`convgrad info`), so the layer's order changes nothing it picks but the order
/// among adapters of the same kind. Real failures are still reported: this silences no output.
fn quiet_device_select() {
    if std::env::var_os("NODEVICE_SELECT").is_none() && std::env::var_os("MESA_VK_DEVICE_SELECT").is_none() {
        // SAFETY: as in oversubscribe_lavapipe, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

fn adapter_options(cli: &Cli) -> AdapterOptions {
    let mut o = AdapterOptions::from_env();
    if let Some(b) = cli.backend {
        o.backends = match b {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        };
    }
    if let Some(a) = &cli.adapter {
        o.name = Some(a.clone());
    }
    o
}

pub fn context(options: &AdapterOptions) -> Result<Context, CliError> {
    Ok(Context::with_options(options)?)
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let options = adapter_options(&cli);
    match cli.command {
        Command::Forward(a) => forward(&options, &a).map(|()| ExitCode::SUCCESS),
        Command::WeightGrad(a) => weight_grad(&options, &a).map(|()| ExitCode::SUCCESS),
        Command::InputGrad(a) => input_grad(&options, &a).map(|()| ExitCode::SUCCESS),
        Command::ConvTranspose(a) => conv_transpose(&options, &a).map(|()| ExitCode::SUCCESS),
        Command::Info => info(&options),
        Command::Check(a) => check(&options, &a),
        Command::Demo(a) => demo::run(&options, &a),
        Command::Bench(a) => bench::run(&options, &a),
        Command::Tune(a) => tune::run(&options, &a),
        Command::Program(a) => program(&options, &a),
    }
}

/// An array as 4-D, or an error naming the file and the rank it has.
fn rank<D: ndarray::Dimension>(a: ArrayD<f32>, path: &Path, want: &str) -> Result<ndarray::Array<f32, D>, CliError> {
    let r = a.ndim();
    a.into_dimensionality::<D>()
        .map_err(|_| CliError(format!("{}: expected {want}, got a {r}-D array", path.display())))
}

/// Error context: which files the shapes came from.
fn shapes_err(e: convgrad::Error, files: &[(&Path, &[usize])]) -> CliError {
    let list: Vec<String> = files.iter().map(|(p, s)| format!("{} {:?}", p.display(), s)).collect();
    CliError(format!("{e} ({})", list.join(", ")))
}

fn report(what: &str, path: &Path, shape: &[usize], elem: Elem, ctx: &Context) {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let ty = npy::npy_type(elem);
    eprintln!("convgrad: wrote {} ({what}, {ty} {}) on {}", path.display(), dims.join("×"), ctx.adapter_info().name);
}

/// Uploads `a` as `elem` (rounded).
fn up<D: ndarray::Dimension>(ctx: &Context, a: &ndarray::Array<f32, D>, elem: Elem) -> convgrad::Result<Tensor> {
    ctx.upload_as(a.view(), elem)
}

fn forward(options: &AdapterOptions, a: &ForwardArgs) -> Result<(), CliError> {
    let (x, xe) = npy::read(&a.input)?;
    let (w, we) = npy::read(&a.weight)?;
    let mut dtypes = vec![(a.input.as_path(), xe), (a.weight.as_path(), we)];
    let b = match &a.bias {
        Some(p) => {
            let (b, be) = npy::read(p)?;
            dtypes.push((p.as_path(), be));
            Some(rank::<Ix1>(b, p, "a 1-D bias of K values")?)
        }
        None => None,
    };
    let elem = dtype_of(a.conv.dtype, &dtypes)?;
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let files: [(&Path, &[usize]); 2] = [(&a.input, &xs), (&a.weight, &ws)];
    let params = a.conv.params();
    let (xl, _, wl) = a.conv.letters();
    let single = x.ndim() == 2;
    let (x4, w4) = if single {
        a.conv.single_channel()?;
        let w3 = rank::<Ix3>(w, &a.weight, "K×S×T filters with a 2-D (single-channel) input")?;
        (
            rank::<Ix2>(x, &a.input, "2-D")?.insert_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)),
            w3.insert_axis(ndarray::Axis(1)),
        )
    } else {
        (
            rank::<Ix4>(x, &a.input, &format!("an {xl} (4-D) or U×V (2-D) input"))?,
            rank::<Ix4>(w, &a.weight, &format!("{wl} (4-D) weights"))?,
        )
    };
    // Shapes are checked before a device is opened, so a bad file fails fast.
    params.geometry(convgrad_dims(&x4), convgrad_dims(&w4)).map_err(|e| shapes_err(e, &files))?;
    let ctx = context(options)?;
    let y = (|| {
        let (xt, wt) = (up(&ctx, &x4, elem)?, up(&ctx, &w4, elem)?);
        let bt = b.as_ref().map(|b| up(&ctx, b, elem)).transpose()?;
        ctx.download::<Ix4>(&ctx.forward(&xt, &wt, bt.as_ref(), &params)?)
    })()
    .map_err(|e| shapes_err(e, &files))?;
    let y = if single { y.index_axis_move(ndarray::Axis(0), 0).into_dyn() } else { y.into_dyn() };
    npy::write(&a.output, &y, elem)?;
    report("forward", &a.output, y.shape(), elem, &ctx);
    Ok(())
}

fn weight_grad(options: &AdapterOptions, a: &WeightGradArgs) -> Result<(), CliError> {
    let (x, xe) = npy::read(&a.input)?;
    let (dy, de) = npy::read(&a.grad_output)?;
    let elem = dtype_of(a.conv.dtype, &[(&a.input, xe), (&a.grad_output, de)])?;
    let (xs, ds) = (x.shape().to_vec(), dy.shape().to_vec());
    let files: [(&Path, &[usize]); 2] = [(&a.input, &xs), (&a.grad_output, &ds)];
    let params = a.conv.params();
    let (xl, yl, _) = a.conv.letters();
    let single = x.ndim() == 2;
    let (x4, dy4) = if single {
        a.conv.single_channel()?;
        let d3 = rank::<Ix3>(dy, &a.grad_output, "a K×P×Q output gradient with a 2-D (single-channel) input")?;
        (
            rank::<Ix2>(x, &a.input, "2-D")?.insert_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)),
            d3.insert_axis(ndarray::Axis(0)),
        )
    } else {
        (
            rank::<Ix4>(x, &a.input, &format!("an {xl} (4-D) or U×V (2-D) input"))?,
            rank::<Ix4>(dy, &a.grad_output, &format!("an {yl} (4-D) output gradient"))?,
        )
    };
    params
        .geometry_for_weight_grad(convgrad_dims(&x4), convgrad_dims(&dy4), a.kernel_size)
        .map_err(|e| shapes_err(e, &files))?;
    let ctx = context(options)?;
    // dW in f32 whatever the operands' dtype: the master weights' type.
    let dw = (|| {
        let (xt, dyt) = (up(&ctx, &x4, elem)?, up(&ctx, &dy4, elem)?);
        ctx.download::<Ix4>(&ctx.weight_grad(&xt, &dyt, a.kernel_size, &params)?)
    })()
    .map_err(|e| shapes_err(e, &files))?;
    let dw = if single { dw.index_axis_move(ndarray::Axis(1), 0).into_dyn() } else { dw.into_dyn() };
    npy::write_f32(&a.output, &dw)?;
    report("weight gradient", &a.output, dw.shape(), Elem::F32, &ctx);
    Ok(())
}

fn input_grad(options: &AdapterOptions, a: &InputGradArgs) -> Result<(), CliError> {
    let (dy, de) = npy::read(&a.grad_output)?;
    let (w, we) = npy::read(&a.weight)?;
    let elem = dtype_of(a.conv.dtype, &[(&a.grad_output, de), (&a.weight, we)])?;
    let (ds, ws) = (dy.shape().to_vec(), w.shape().to_vec());
    let files: [(&Path, &[usize]); 2] = [(&a.grad_output, &ds), (&a.weight, &ws)];
    let params = a.conv.params();
    let (_, yl, wl) = a.conv.letters();
    let single = dy.ndim() == 3;
    let (dy4, w4) = if single {
        a.conv.single_channel()?;
        let w3 = rank::<Ix3>(w, &a.weight, "K×S×T filters with a K×P×Q output gradient")?;
        (rank::<Ix3>(dy, &a.grad_output, "3-D")?.insert_axis(ndarray::Axis(0)), w3.insert_axis(ndarray::Axis(1)))
    } else {
        (
            rank::<Ix4>(dy, &a.grad_output, &format!("an {yl} (4-D) or K×P×Q (3-D) output gradient"))?,
            rank::<Ix4>(w, &a.weight, &format!("{wl} (4-D) weights"))?,
        )
    };
    params
        .geometry_for_input_grad(convgrad_dims(&dy4), convgrad_dims(&w4), a.input_size)
        .map_err(|e| shapes_err(e, &files))?;
    let ctx = context(options)?;
    let dx = (|| {
        let (dyt, wt) = (up(&ctx, &dy4, elem)?, up(&ctx, &w4, elem)?);
        ctx.download::<Ix4>(&ctx.input_grad(&dyt, &wt, a.input_size, &params)?)
    })()
    .map_err(|e| shapes_err(e, &files))?;
    let dx: ArrayD<f32> = if single {
        dx.index_axis_move(ndarray::Axis(0), 0).index_axis_move(ndarray::Axis(0), 0).into_dyn()
    } else {
        dx.into_dyn()
    };
    npy::write(&a.output, &dx, elem)?;
    report("input gradient", &a.output, dx.shape(), elem, &ctx);
    Ok(())
}

fn convgrad_dims(a: &ndarray::Array4<f32>) -> [usize; 4] {
    let d = a.dim();
    [d.0, d.1, d.2, d.3]
}

fn info(options: &AdapterOptions) -> Result<ExitCode, CliError> {
    let adapters = convgrad::list_adapters(options);
    if adapters.is_empty() {
        return Err(CliError(
            convgrad::Error::NoAdapter {
                detail: format!(" on backends {}", convgrad::gpu::backend_names(options.backends)),
            }
            .to_string(),
        ));
    }
    println!("convgrad {}: {} adapter(s); * = the one convgrad would use", env!("CARGO_PKG_VERSION"), adapters.len());
    for a in &adapters {
        let i = &a.info;
        let l = &a.limits;
        println!(
            "{} {} [{:?}, {:?}] driver: {} {}",
            if a.chosen { "*" } else { " " },
            i.name,
            i.backend,
            i.device_type,
            i.driver,
            i.driver_info
        );
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, workgroups/dim {}, invocations/workgroup {}, workgroup memory {} KiB",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size >> 10
        );
    }
    if !adapters.iter().any(|a| a.chosen) {
        println!("no adapter matches the name given (--adapter / WGPU_ADAPTER_NAME)");
        return Ok(ExitCode::from(2));
    }
    let ctx = context(options)?;
    println!("profile of {}: {} (CONVGRAD_PROFILE=cpu|gpu forces one)", ctx.adapter_info().name, ctx.profile());
    Ok(ExitCode::SUCCESS)
}

fn check(options: &AdapterOptions, a: &CheckArgs) -> Result<ExitCode, CliError> {
    let ctx = context(options)?;
    let i = ctx.adapter_info();
    println!(
        "convgrad check on {} ({:?}, {:?}, driver {} {}); f16 by {}",
        i.name,
        i.backend,
        i.device_type,
        i.driver,
        i.driver_info,
        ctx.profile().half.name()
    );
    println!(
        "each row: GPU vs f64 reference over the operands in their dtype; bound = worst element error / its \
         rounding bound (f32 sums, then the stored type's rounding; pass ≤ 1)"
    );
    println!("{:<5} {:<15} {:<62} {:>10} {:>8}  result", "dtype", "op", "layer", "rel. err", "bound");
    let (mut total, mut failed) = (0, 0);
    for &elem in &a.dtype.0 {
        let rows = if elem == Elem::F32 {
            convgrad::verify::self_test(&ctx)?
        } else {
            convgrad::verify::self_test_as(&ctx, elem)?
        };
        for r in &rows {
            println!(
                "{:<5} {:<15} {:<62} {:>10.2e} {:>8.3}  {}",
                elem.name(),
                r.op,
                r.shape,
                r.rel_err,
                r.bound_ratio,
                if r.pass { "pass" } else { "FAIL" }
            );
            failed += usize::from(!r.pass);
        }
        total += rows.len();
    }
    println!("{} passed, {} failed", total - failed, failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
