//! `ocipack verify`, `inspect` and `export`: commands that read a layout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::HumanBytes;
use ocipack::verify::Policy;

use crate::exit::{print_json, Exit};
use crate::nix_attrs::Attrs;

/// Arguments of `ocipack verify`.
#[derive(Args)]
#[command(
    after_help = "Exit status 3 when problems are found; each is printed on its own line.

In a registry (what `ocipack push` attached; docs/supply-chain.md):
  ocipack verify --remote 127.0.0.1:5000/aurum-circle/redis:latest --key keys/release.pub --insecure
checks the cosign signature, the provenance and the SBOM against the image's layers.
Exit 0 verified; 3 a check failed (each printed as FAIL ...); 1 bad input or
unreachable image; 4 credentials refused."
)]
pub struct VerifyArgs {
    /// The OCI image layout.
    #[arg(required_unless_present_any = ["nix_attrs", "remote"], conflicts_with = "remote")]
    layout: Option<PathBuf>,
    /// Accept root users, setuid/setgid and world-writable paths.
    #[arg(long)]
    allow_root: bool,
    /// Accept a shell in the image.
    #[arg(long)]
    allow_shell: bool,
    /// Read the layout path from the Nix structured attrs (`image`) and write a report to `outputs.out`.
    #[arg(long, conflicts_with = "layout")]
    nix_attrs: bool,
    #[command(flatten)]
    remote: crate::cmd_verify_remote::RemoteArgs,
}

/// Arguments of `ocipack inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The OCI image layout.
    layout: PathBuf,
}

/// Arguments of `ocipack export`.
#[derive(Args)]
#[command(after_help = "Examples:
  ocipack export out/scoring --docker-archive scoring.tar --tag scoring:latest
  ocipack export out/scoring --docker-archive - | docker load")]
pub struct ExportArgs {
    /// The OCI image layout.
    layout: PathBuf,
    /// Write a docker-archive tarball here (`-` for stdout).
    #[arg(long)]
    docker_archive: PathBuf,
    /// Which tag of the layout to export (default: its only image).
    #[arg(long)]
    from_tag: Option<String>,
    /// Repository and tag recorded in the archive, e.g. `scoring:latest`.
    #[arg(long)]
    tag: Option<String>,
}

pub fn verify(a: VerifyArgs, json: bool) -> Result<()> {
    if a.remote.remote.is_some() {
        return crate::cmd_verify_remote::run(&a.remote, json);
    }
    let (dir, out) = if a.nix_attrs {
        let attrs = Attrs::load()?;
        let dir = attrs
            .get("image")?
            .as_str()
            .context("attribute image must be a path")?
            .into();
        (dir, Some(attrs.out()?))
    } else {
        (a.layout.expect("clap requires it"), None)
    };
    let policy = Policy {
        allow_root: a.allow_root,
        allow_shell: a.allow_shell,
    };
    let report = ocipack::verify::verify(&dir, policy)?;
    if json {
        print_json(&report)?;
    }
    for p in &report.problems {
        eprintln!("{}: {p}", dir.display());
    }
    if !report.problems.is_empty() {
        eprintln!("{}: {} problem(s)", dir.display(), report.problems.len());
        return Err(Exit(3).into());
    }
    if !json {
        eprintln!(
            "{}: ok ({} image(s), {} blobs re-hashed)",
            dir.display(),
            report.images,
            report.blobs
        );
    }
    if let Some(out) = out {
        std::fs::write(
            &out,
            format!("ok: {} image(s), {} blobs\n", report.images, report.blobs),
        )?;
    }
    Ok(())
}

pub fn inspect(a: InspectArgs, json: bool) -> Result<()> {
    let images = ocipack::inspect::inspect(&a.layout)?;
    if json {
        return print_json(&images);
    }
    for img in images {
        println!("tags:     {}", img.tags.join(", "));
        if let (Some(p), Some(i)) = (&img.platform, &img.index_digest) {
            println!("platform: {p} (index {i})");
        }
        println!("manifest: {}", img.manifest_digest);
        println!("config:   {}", img.config_digest);
        println!(
            "size:     {} ({} bytes)",
            HumanBytes(img.total_size),
            img.total_size
        );
        let c = &img.config["config"];
        for key in [
            "User",
            "Entrypoint",
            "Cmd",
            "Env",
            "WorkingDir",
            "ExposedPorts",
            "Healthcheck",
        ] {
            if !c[key].is_null() {
                println!("{:<13} {}", format!("{key}:"), c[key]);
            }
        }
        println!(
            "{:<3} {:<19} {:<19} {:<10} {:>10} {:>12} {:>6}  holds",
            "#", "digest", "diff_id", "type", "size", "uncompressed", "files"
        );
        for (i, l) in img.layers.iter().enumerate() {
            let kind = l.media_type.rsplit('.').next().unwrap_or("");
            println!(
                "{:<3} {:<19} {:<19} {:<10} {:>10} {:>12} {:>6}  {}",
                i,
                &l.digest[..19],
                &l.diff_id[..19],
                kind,
                l.size,
                l.uncompressed_size,
                l.files,
                l.holds
            );
        }
        println!();
    }
    Ok(())
}

pub fn export(a: ExportArgs, json: bool) -> Result<()> {
    let repo_tag = a.tag.clone().unwrap_or_else(|| {
        let name = a
            .layout
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        format!("{name}:{}", a.from_tag.as_deref().unwrap_or("latest"))
    });
    if a.docker_archive.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        ocipack::export::export_docker_archive(
            &a.layout,
            a.from_tag.as_deref(),
            &repo_tag,
            &mut lock,
        )?;
        return lock.flush().context("stdout");
    }
    let dest = &a.docker_archive;
    let tmp = dest.with_file_name(format!(
        ".{}.ocipack-tmp",
        dest.file_name()
            .context("--docker-archive needs a file name")?
            .to_string_lossy()
    ));
    let result = (|| -> Result<()> {
        let f = std::fs::File::create(&tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        ocipack::export::export_docker_archive(
            &a.layout,
            a.from_tag.as_deref(),
            &repo_tag,
            &mut w,
        )?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("{}: cannot rename into place", dest.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if json {
        print_json(&serde_json::json!({"archive": dest, "tag": repo_tag}))?;
    } else {
        eprintln!("wrote {} ({repo_tag})", dest.display());
    }
    Ok(())
}
