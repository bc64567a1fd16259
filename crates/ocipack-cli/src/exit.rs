//! How a command ends, shared by the subcommands so none of them reaches
//! into `main.rs`: an error carrying its own exit code, and the one-line
//! JSON summary of `--json`.

/// An error that carries its own exit code (`main` exits with it and
/// prints nothing more: the command has said what happened).
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

/// Prints `value` as one line of canonical JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let v = serde_json::to_value(value)?;
    println!("{}", String::from_utf8(ocipack::json::canonical(&v))?);
    Ok(())
}
