//! ONNX Runtime loading for the ML services.
//!
//! The runtime is a shared library loaded at start (`load-dynamic`), from
//! `ORT_DYLIB_PATH`; images set it to /usr/lib/onnxruntime/libonnxruntime.so.1.
//! Loading it explicitly here turns a missing library into an error naming the
//! path instead of a panic on first use.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ort::session::Session;

use crate::error::{Error, Result};

pub use ort;

/// Where the runtime comes from when `ORT_DYLIB_PATH` is unset: the container path.
pub const DEFAULT_DYLIB: &str = "/usr/lib/onnxruntime/libonnxruntime.so.1";

static RUNTIME: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

/// Loads the ONNX Runtime library once per process.
///
/// # Errors
///
/// [`Error::Onnx`] when the library is missing or cannot be loaded.
pub fn init_runtime() -> Result<()> {
    let outcome = RUNTIME.get_or_init(|| {
        let path = std::env::var_os("ORT_DYLIB_PATH")
            .map_or_else(|| PathBuf::from(DEFAULT_DYLIB), PathBuf::from);
        if !path.exists() {
            return Err(format!(
                "onnx runtime library {} not found; set ORT_DYLIB_PATH (scripts/fetch-assets.sh puts it under runtimes/onnxruntime/)",
                path.display()
            ));
        }
        ort::init_from(&path)
            .map_err(|e| format!("cannot load onnx runtime {}: {e}", path.display()))?
            .with_name("aurum")
            .commit();
        // ort releases its global environment from a .fini_array entry of
        // this binary, which runs after the dlopen'ed runtime's own C++
        // destructors: ONNX Runtime 1.22 (nixpkgs 25.11's) then crashes
        // every process at exit (SIGSEGV after a clean shutdown). Holding
        // one reference for the life of the process means that entry never
        // calls ReleaseEnv; the process is exiting, so nothing is lost
        // (tests/nix/nextest-sandbox.sh runs the services on 1.22).
        let env = ort::environment::Environment::current()
            .map_err(|e| format!("cannot create the onnx runtime environment ({}): {e}", path.display()))?;
        std::mem::forget(env);
        Ok(path)
    });
    outcome
        .as_ref()
        .map(|_| ())
        .map_err(|e| Error::Onnx(e.clone()))
}

pub use crate::cpu::{Threads, MAX_DEFAULT_SESSIONS};

/// One session and the scratch input buffer that goes with it, reused from
/// request to request so a 640x640 input is not reallocated each time.
#[derive(Debug)]
pub struct Slot {
    /// The session.
    pub session: Session,
    /// Scratch space for the input tensor; its length is whatever the last
    /// user left (callers resize it).
    pub input: Vec<f32>,
    /// What the last user left in `input` beyond one request's values (the
    /// detector: the letterbox geometry whose padding is there), so the next
    /// one may skip rewriting it; `None` when unknown. Callers set it to
    /// `None` before writing `input` and to their tag once done.
    pub input_tag: Option<u64>,
}

/// A pool of sessions of one model. ONNX Runtime sessions need `&mut` to
/// run (in `ort`), so each request takes a session out, runs, and puts it
/// back; with one session per CPU, concurrent requests run in parallel
/// instead of queueing behind one mutex.
#[derive(Debug)]
pub struct Model {
    free: Mutex<Vec<Slot>>,
    returned: Condvar,
    /// Sessions and threads in use.
    pub threads: Threads,
    /// Model file it came from.
    pub path: PathBuf,
}

/// Puts a slot back (also when the caller's closure panics).
struct Lease<'a> {
    model: &'a Model,
    slot: Option<Slot>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.model
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(slot);
            self.model.returned.notify_one();
        }
    }
}

impl Model {
    /// Loads `threads.sessions` sessions of `path`, each with `threads.intra`
    /// intra-op threads.
    ///
    /// # Errors
    ///
    /// [`Error::Onnx`] when the runtime or the model cannot be loaded.
    pub fn load(path: &Path, threads: Threads) -> Result<Self> {
        init_runtime()?;
        if !path.is_file() {
            return Err(Error::Onnx(format!(
                "model file {} not found; run scripts/fetch-assets.sh or set the model path variable",
                path.display()
            )));
        }
        let onnx = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            Error::Onnx(format!("{}: {e}", path.display()))
        };
        let spinning = threads.spinning(crate::cpu::cpus());
        let mut free = Vec::with_capacity(threads.sessions);
        for _ in 0..threads.sessions.max(1) {
            let session = Session::builder()
                .map_err(|e| Error::Onnx(e.to_string()))?
                .with_intra_threads(threads.intra)
                .map_err(onnx)?
                .with_inter_threads(1)
                .map_err(onnx)?
                .with_intra_op_spinning(spinning)
                .map_err(onnx)?
                .commit_from_file(path)
                .map_err(|e| Error::Onnx(format!("cannot load model {}: {e}", path.display())))?;
            free.push(Slot {
                session,
                input: Vec::new(),
                input_tag: None,
            });
        }
        Ok(Self {
            free: Mutex::new(free),
            returned: Condvar::new(),
            threads,
            path: path.to_owned(),
        })
    }

    /// Runs `f` with exclusive use of a free session (waiting for one when
    /// all are busy); returns its result and the time spent inside (waiting
    /// excluded). Blocks: call it from a blocking thread.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns, as [`Error::Onnx`].
    pub fn with_session<T>(
        &self,
        f: impl FnOnce(&mut Slot) -> ort::Result<T>,
    ) -> Result<(T, Duration)> {
        let slot = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(slot) = free.pop() {
                    break slot;
                }
                free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
            }
        };
        let mut lease = Lease {
            model: self,
            slot: Some(slot),
        };
        let started = Instant::now();
        let out = f(lease.slot.as_mut().expect("leased slot is present"))
            .map_err(|e| Error::Onnx(format!("{}: {e}", self.path.display())))?;
        Ok((out, started.elapsed()))
    }
}

/// Raw inference under load, the baseline `scripts/bench-services.sh` puts
/// next to the services: `clients` threads share `runs` model runs on the
/// same ready input tensor (no decoding, no pre- or post-processing, outputs
/// dropped unread), each run timed from asking for a session to its end, as a
/// request is. Returns the run times in ms and the wall time of all runs.
///
/// # Errors
///
/// The first failed run.
pub fn bench_raw(
    model: &Model,
    shape: &[usize],
    input: &[f32],
    runs: usize,
    clients: usize,
) -> Result<(Vec<f64>, Duration)> {
    // Warm every session first (its first runs allocate the arena), as the
    // service's sessions are warm after the benchmark's warm-up requests.
    let sessions = model.threads.sessions;
    timed_runs(model, shape, input, 2 * sessions, sessions)?;
    timed_runs(model, shape, input, runs, clients)
}

/// One raw run on the ready input tensor, as [`bench_raw`] times them (from
/// asking for a session to its end), without the warm-up: for interleaving
/// raw runs with whole requests in one process (`--bench-stages`).
///
/// # Errors
///
/// When the run fails.
pub fn time_raw_run(model: &Model, shape: &[usize], input: &[f32]) -> Result<Duration> {
    let (times, _) = timed_runs(model, shape, input, 1, 1)?;
    Ok(Duration::from_secs_f64(times[0] / 1e3))
}

fn timed_runs(
    model: &Model,
    shape: &[usize],
    input: &[f32],
    runs: usize,
    clients: usize,
) -> Result<(Vec<f64>, Duration)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let per_client = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut times = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < runs.max(1) {
                        let asked = Instant::now();
                        model.with_session(|slot| {
                            slot.session
                                .run(ort::inputs![ort::value::TensorRef::from_array_view((
                                    shape.to_vec(),
                                    input
                                ))?])
                                .map(drop)
                        })?;
                        times.push(asked.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok::<_, Error>(times)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("bench thread panicked"))
            .collect::<Vec<_>>()
    });
    let wall = started.elapsed();
    let mut all = Vec::with_capacity(runs);
    for times in per_client {
        all.extend(times?);
    }
    Ok((all, wall))
}
