//! The `ocipack` command: parses arguments, dispatches, turns errors into exit codes.
//!
//! Exit codes: 0 success; 1 failure (bad input, I/O; the message names the
//! input); 2 usage error; 3 `verify` found problems; 4 registry refused the
//! credentials (`push`).

mod cmd_attest;
mod cmd_build;
mod cmd_cache;
mod cmd_deploy;
mod cmd_host;
mod cmd_index;
mod cmd_layers;
mod cmd_push;
mod cmd_push_sign;
mod cmd_read;
mod cmd_referrers;
mod cmd_sbom;
mod cmd_sign;
mod cmd_verify_remote;
mod exit;
mod nix_attrs;
mod progress;
mod sbom_nix;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use exit::Exit;

/// Deterministic OCI image packer: plans in, bit-for-bit reproducible OCI layouts out.
#[derive(Parser)]
#[command(name = "ocipack", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  ocipack build plan.json -o out/scoring
  ocipack inspect out/scoring
  ocipack verify out/scoring
  ocipack export out/scoring --docker-archive scoring.tar --tag scoring:latest
  ocipack layers graph.json --max 20
  ocipack host --all -o out/images
  ocipack push --all out/images 127.0.0.1:5000/aurum-circle --insecure
  ocipack deploy --registry 127.0.0.1:5000/aurum-circle";

#[derive(Subcommand)]
enum Command {
    /// Build an OCI image layout from a plan.
    Build(cmd_build::BuildArgs),
    /// Build one layer blob and its descriptor from a layer spec.
    Layer(cmd_build::LayerArgs),
    /// Split a Nix closure graph into at most N layers.
    Layers(cmd_layers::LayersArgs),
    /// Re-hash every blob and check references and the non-root policy.
    Verify(cmd_read::VerifyArgs),
    /// Show tags, digests, config and layers of a layout.
    Inspect(cmd_read::InspectArgs),
    /// Write an image of a layout as a docker-archive tarball.
    Export(cmd_read::ExportArgs),
    /// Build images from images/NAME.toml with the host's binaries and libraries (no Nix).
    Host(cmd_host::HostArgs),
    /// Combine per-platform layouts into one layout with an OCI image index per tag.
    Index(cmd_index::IndexArgs),
    /// Push layouts to an OCI distribution registry.
    Push(cmd_push::PushArgs),
    /// List the referrers (SBOMs, signatures, provenance) of an image in a registry.
    Referrers(cmd_referrers::ReferrersArgs),
    /// Pin deploy/images.env and the kustomize images to the built digests.
    Deploy(cmd_deploy::DeployArgs),
    /// Show or prune the layer cache of `build` and `host`.
    Cache(cmd_cache::CacheArgs),
    /// Write the SBOM (SPDX 2.3, CycloneDX 1.6) of a layout's image from its exact inputs.
    Sbom(cmd_sbom::SbomArgs),
    /// Sign a layout's image (cosign-compatible), or generate a key pair.
    Sign(cmd_sign::SignArgs),
    /// Write signed SLSA provenance of a layout's image, or verify its signature, provenance and SBOM.
    Attest(cmd_attest::AttestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command {
        Command::Build(a) => cmd_build::build(a, json),
        Command::Layer(a) => cmd_build::layer(a, json),
        Command::Layers(a) => cmd_layers::run(a, json),
        Command::Verify(a) => cmd_read::verify(a, json),
        Command::Inspect(a) => cmd_read::inspect(a, json),
        Command::Export(a) => cmd_read::export(a, json),
        Command::Host(a) => cmd_host::run(a, json),
        Command::Index(a) => cmd_index::run(a, json),
        Command::Push(a) => cmd_push::run(a, json),
        Command::Referrers(a) => cmd_referrers::run(a, json),
        Command::Deploy(a) => cmd_deploy::run(a, json),
        Command::Cache(a) => cmd_cache::run(a, json),
        Command::Sbom(a) => cmd_sbom::run(a, json),
        Command::Sign(a) => cmd_sign::run(a, json),
        Command::Attest(a) => cmd_attest::run(a, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            eprintln!("ocipack: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
