//! ONNX Runtime loading for the ML services.
//!
//! The runtime is a shared library loaded at start (`load-dynamic`), from
//! `ORT_DYLIB_PATH`; images set it to /usr/lib/onnxruntime/libonnxruntime.so.1.
//! Loading it explicitly here turns a missing library into an error naming the
//! path instead of a panic on first use.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
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

/// A model session; ONNX Runtime sessions need `&mut` to run, so callers
/// take turns through a mutex (one session on 2 cores is the measured best:
/// concurrent runs would only split the same intra-op threads).
#[derive(Debug)]
pub struct Model {
    session: Mutex<Session>,
    /// Model file it came from.
    pub path: PathBuf,
}

impl Model {
    /// Loads `path` with `intra_threads` intra-op threads.
    ///
    /// # Errors
    ///
    /// [`Error::Onnx`] when the runtime or the model cannot be loaded.
    pub fn load(path: &Path, intra_threads: usize) -> Result<Self> {
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
        let session = Session::builder()
            .map_err(|e| Error::Onnx(e.to_string()))?
            .with_intra_threads(intra_threads)
            .map_err(onnx)?
            .with_inter_threads(1)
            .map_err(onnx)?
            .commit_from_file(path)
            .map_err(|e| Error::Onnx(format!("cannot load model {}: {e}", path.display())))?;
        Ok(Self {
            session: Mutex::new(session),
            path: path.to_owned(),
        })
    }

    /// Runs `f` with exclusive use of the session; returns its result and
    /// the time spent inside (waiting for the lock excluded).
    ///
    /// # Errors
    ///
    /// Whatever `f` returns, as [`Error::Onnx`].
    pub fn with_session<T>(
        &self,
        f: impl FnOnce(&mut Session) -> ort::Result<T>,
    ) -> Result<(T, Duration)> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let out =
            f(&mut session).map_err(|e| Error::Onnx(format!("{}: {e}", self.path.display())))?;
        Ok((out, started.elapsed()))
    }
}
