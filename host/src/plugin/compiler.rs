//! Where plugins are compiled. Cranelift keeps what it allocated while
//! compiling (hundreds of MB for a Python guest), so `gridlet serve`
//! compiles in a child `gridlet compile-plugin` process that writes the
//! compile cache, and then loads the compiled code from there (mapped, as a
//! restart would): the serving process never grows by a compile. The child
//! is watched: over its memory cap (its resident set, read from /proc) or
//! its time, it is killed and the version refused with the reason, while
//! the host serves on.

use crate::runtime::{LoadError, RuntimeSettings};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How plugins are compiled.
#[derive(Debug, Clone, Default)]
pub enum Compiler {
    /// In this process (embedders, `gridlet run`, tests).
    #[default]
    InProcess,
    /// In a child process, within caps.
    Child(ChildCompiler),
}

/// A child `gridlet compile-plugin` and its caps.
#[derive(Debug, Clone)]
pub struct ChildCompiler {
    /// The `gridlet` executable.
    pub exe: PathBuf,
    /// Most resident memory the compile may use.
    pub max_memory_bytes: u64,
    /// Most time it may take.
    pub timeout: Duration,
}

impl ChildCompiler {
    /// The defaults for `exe`: 2 GiB, 5 minutes.
    pub fn new(exe: PathBuf) -> Self {
        Self {
            exe,
            max_memory_bytes: 2048 * 1024 * 1024,
            timeout: Duration::from_secs(300),
        }
    }

    /// Compile `wasm` for an engine configured by `settings` into `out` (a
    /// compile cache file, written through a temporary name).
    pub fn compile(
        &self,
        settings: &RuntimeSettings,
        wasm: &[u8],
        out: &Path,
    ) -> Result<(), LoadError> {
        let failed = |why: String| LoadError::Compile(why);
        let mut child = Command::new(&self.exe)
            .arg("compile-plugin")
            .arg("--out")
            .arg(out)
            .args(settings_args(settings))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", self.exe.display())))?;
        // The bytes already read (and checked) go over stdin: the child never
        // opens the plugins folder.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(wasm);
        }
        let mut stderr = child.stderr.take();
        let started = Instant::now();
        let limit_mib = self.max_memory_bytes / (1024 * 1024);
        let outcome = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(format!("waiting for the compiler: {e}")),
            }
            if resident_bytes(child.id()).is_some_and(|rss| rss > self.max_memory_bytes) {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "compiling needed more than {limit_mib} MiB of memory (the compile cap): refused"
                ));
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "compiling took more than {:?} (the compile cap): refused",
                    self.timeout
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let status = outcome.map_err(failed)?;
        if status.success() {
            return Ok(());
        }
        let mut said = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.take(64 * 1024).read_to_string(&mut said);
        }
        // The child says why on its `error: ...` line (else its last line).
        let why = said
            .lines()
            .find(|l| l.starts_with("error: "))
            .or_else(|| said.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string();
        Err(match why.strip_prefix("not a WebAssembly component: ") {
            Some(why) => LoadError::NotAComponent(why.to_string()),
            None if why.is_empty() => failed(format!("the compiler exited with {status}")),
            None => failed(why),
        })
    }
}

/// The engine settings that decide compiled code, as `compile-plugin`'s
/// arguments: the child builds the same engine, so its output loads here.
fn settings_args(s: &RuntimeSettings) -> Vec<String> {
    vec![
        format!("--max-memory-bytes={}", s.max_memory_bytes),
        format!("--max-instances={}", s.max_instances),
        format!("--memory-keep-resident={}", s.memory_keep_resident),
        format!("--pagemap-scan={}", s.pagemap_scan),
        format!("--fuel={}", s.fuel),
    ]
}

/// A process's resident set size, from `/proc/<pid>/status`.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
