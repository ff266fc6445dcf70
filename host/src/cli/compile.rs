//! `gridlet compile-plugin`: compile one component (read from stdin) into a
//! compile cache file, for an engine built from the given settings. What
//! `gridlet serve` runs as a child, so Cranelift's memory never stays in
//! the serving process (see `plugin::compiler`).

use anyhow::Context;
use clap::Args;
use gridlet::plugin::cache::write_atomically;
use gridlet::runtime::{MemoryKeyValue, Runtime, RuntimeSettings};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `gridlet compile-plugin` (the serving process passes its
/// engine's settings, so the compiled code loads there).
#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The compiled file to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    max_memory_bytes: usize,
    #[arg(long)]
    max_instances: u32,
    #[arg(long)]
    memory_keep_resident: usize,
    #[arg(long, action = clap::ArgAction::Set)]
    pagemap_scan: bool,
    #[arg(long, action = clap::ArgAction::Set)]
    fuel: bool,
}

/// Compile stdin into `--out`.
pub async fn compile(args: CompileArgs) -> anyhow::Result<ExitCode> {
    // The compile is the serving process's: if that dies (kill -9, a
    // crash), so does the compile, instead of spending minutes of CPU
    // beside the host that replaces it (which compiles the same file again).
    // The thread that spawned this process waits for it, so it is the
    // parent's death, not a thread's, that this hears of.
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid only read and set this
    // process's own attributes.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() == 1 {
            anyhow::bail!("the process that asked for this compile is gone");
        }
    }
    let mut wasm = Vec::new();
    std::io::stdin()
        .read_to_end(&mut wasm)
        .context("reading the component from stdin")?;
    let settings = RuntimeSettings {
        max_memory_bytes: args.max_memory_bytes,
        max_instances: args.max_instances,
        memory_keep_resident: args.memory_keep_resident,
        pagemap_scan: args.pagemap_scan,
        fuel: args.fuel,
        guest_threads: 1,
        ..RuntimeSettings::default()
    };
    let runtime = Runtime::new(settings, Arc::new(MemoryKeyValue::default()))?;
    let code = runtime.precompile(&wasm)?;
    let dir = args
        .out
        .parent()
        .context("--out has no folder")?
        .to_path_buf();
    write_atomically(&dir, &args.out, &code)?;
    Ok(ExitCode::SUCCESS)
}
