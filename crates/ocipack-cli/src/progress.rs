//! A progress bar on a terminal, nothing otherwise.

use std::io::IsTerminal;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use ocipack::layer::{LayerDescriptor, Progress};

/// Shows per-layer progress on stderr when it is a terminal; silent otherwise.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar if stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Bar {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{spinner} layer {prefix}: {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b
        });
        Bar { bar }
    }

    /// Ends the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn layer_started(&self, index: usize, what: &str, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_prefix(index.to_string());
            b.set_message(what.to_owned());
            b.set_length(bytes);
            b.set_position(0);
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    fn layer_reused(&self, index: usize, d: &LayerDescriptor) {
        if let Some(b) = &self.bar {
            b.println(format!(
                "layer {index}: {} {} ({} files) {} [cached]",
                &d.digest[..19],
                HumanBytes(d.size),
                d.files,
                d.comment
            ));
        }
    }
    fn warning(&self, message: &str) {
        match &self.bar {
            Some(b) => b.println(format!("ocipack: warning: {message}")),
            None => eprintln!("ocipack: warning: {message}"),
        }
    }
    fn layer_done(&self, index: usize, d: &LayerDescriptor) {
        if let Some(b) = &self.bar {
            b.println(format!(
                "layer {index}: {} {} ({} files) {}",
                &d.digest[..19],
                HumanBytes(d.size),
                d.files,
                d.comment
            ));
        }
    }
}
