//! `faregate init`: a commented example config.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

/// The example, also checked by the test suite so it always compiles.
pub(crate) const EXAMPLE: &str = include_str!("../../../docs/faregate.example.toml");

pub(crate) fn write(path: &Path, force: bool) -> anyhow::Result<ExitCode> {
    if path.exists() && !force {
        anyhow::bail!("{} exists; pass --force to overwrite it", path.display());
    }
    std::fs::write(path, EXAMPLE).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {}; check it with: faregate check-config {}",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
