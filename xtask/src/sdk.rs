//! The real publisher SDKs the interop test drives (`host/tests/sdk.rs`):
//! azure-eventgrid and cloudevents for Python, pinned with every dependency
//! in `host/tests/sdk/requirements.txt`, in a venv of their own
//! (`target/toolchains/sdk-venv`), installed again only when that file
//! changes.

use crate::run;
use anyhow::Result;
use std::path::Path;
use std::process::Command;

/// Make sure the SDK venv holds exactly the pinned requirements.
pub fn install(root: &Path) -> Result<()> {
    let requirements = root.join("host/tests/sdk/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)?;
    let venv = root.join("target/toolchains/sdk-venv");
    let marker = venv.join(".requirements");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str())
        && venv.join("bin/python").exists()
    {
        return Ok(());
    }
    eprintln!(
        "xtask: installing the publisher SDKs (azure-eventgrid, cloudevents) in {}",
        venv.display()
    );
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements))?;
    std::fs::write(marker, wanted)?;
    Ok(())
}
