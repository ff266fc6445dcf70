//! Reading a plugin's files safely. Whoever can write to the plugins folder
//! can put anything there under a plugin's name: a FIFO (which would block
//! a reader forever), a device, a folder, a symlink to a file elsewhere (the
//! operator's secrets, the journal), or a file too large to hold. Only a
//! regular file inside the folder, under a size cap, is read.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Read `file`, which lies in `dir`: `Ok(None)` when it does not exist,
/// an error naming the problem (never the content) when it is not a regular
/// file inside `dir` of at most `cap` bytes.
pub fn read(dir: &Path, file: &Path, cap: u64) -> Result<Option<Vec<u8>>, String> {
    let shown = file.display();
    let meta = match std::fs::symlink_metadata(file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{shown}: cannot read: {e}")),
    };
    let real = if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(file)
            .map_err(|e| format!("{shown}: a symlink that cannot be followed: {e}"))?;
        let root = std::fs::canonicalize(dir)
            .map_err(|e| format!("{}: cannot read: {e}", dir.display()))?;
        if !target.starts_with(&root) {
            return Err(format!(
                "{shown}: a symlink to a file outside the plugins folder: refused"
            ));
        }
        target
    } else {
        file.to_path_buf()
    };
    // Non-blocking, so opening a FIFO never waits for a writer; the checks
    // below are on the file actually opened.
    let mut opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&real)
        .map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let meta = opened
        .metadata()
        .map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{shown}: not a regular file (a folder, FIFO, socket or device): refused"
        ));
    }
    if meta.len() > cap {
        return Err(format!(
            "{shown}: {} bytes, over the limit of {cap} bytes: refused",
            meta.len()
        ));
    }
    read_capped(&mut opened, cap).map_err(|e| format!("{shown}: {e}"))
}

fn read_capped(file: &mut File, cap: u64) -> Result<Option<Vec<u8>>, String> {
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!(
            "grew past the limit of {cap} bytes while being read: refused"
        ));
    }
    Ok(Some(bytes))
}
