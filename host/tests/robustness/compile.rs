//! Compiling happens in a child process with caps: the serving process does
//! not keep what Cranelift allocated, and a compile that goes over its
//! memory or time cap is refused with the reason while the host serves on.

use crate::common::fort::{Fort, install};
use crate::common::process::{rss, serve_logging};
use crate::common::root;
use gridlet::plugin::{ChildCompiler, Compiler};
use std::time::{Duration, Instant};

fn child(max_memory_mib: u64, timeout: Duration) -> Compiler {
    Compiler::Child(ChildCompiler {
        exe: env!("CARGO_BIN_EXE_gridlet").into(),
        max_memory_bytes: max_memory_mib * 1024 * 1024,
        timeout,
    })
}

async fn rejected(fort: &Fort, name: &str) -> String {
    let status = fort.status(name).await;
    assert_eq!(status["state"], "rejected", "{status}");
    status["rejected"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// "good" compiled (and in the compile cache) under the default caps; then a
/// restart with `compiler` and the Python example dropped in: its compile
/// meets the tighter cap while "good" loads from the cache.
async fn python_under(compiler: Compiler) -> (Fort, String) {
    let fort = Fort::start(vec![], |_| {}).await;
    fort.good_still_delivers().await;
    let fort = fort.restart(|s| s.compiler = compiler).await;
    install(
        &fort.dir.path().join("plugins"),
        "python",
        "drift-guard",
        "",
    );
    fort.server.plugins.reconcile("python");
    let reason = rejected(&fort, "python").await;
    (fort, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_over_its_memory_cap_is_refused_while_the_host_serves() {
    // The Python example needs hundreds of MB to compile; 48 MiB is not enough.
    let (fort, reason) = python_under(child(48, Duration::from_secs(300))).await;
    assert!(
        reason.ends_with("compiling needed more than 48 MiB of memory (the compile cap): refused"),
        "{reason}"
    );
    fort.good_still_delivers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_over_its_time_cap_is_refused_while_the_host_serves() {
    let (fort, reason) = python_under(child(4096, Duration::from_millis(200))).await;
    assert!(
        reason.ends_with("compiling took more than 200ms (the compile cap): refused"),
        "{reason}"
    );
    fort.good_still_delivers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_is_not_one_is_refused_by_the_child_with_the_reason() {
    let fort = Fort::start(vec![], |s| {
        s.compiler = child(1024, Duration::from_secs(60))
    })
    .await;
    let plugins = fort.dir.path().join("plugins");
    std::fs::write(plugins.join(".g"), b"\0asm\x0d\0\x01\0garbage").expect("write");
    std::fs::rename(plugins.join(".g"), plugins.join("garbage.wasm")).expect("rename");
    fort.server.plugins.reconcile("garbage");
    let reason = rejected(&fort, "garbage").await;
    assert!(reason.contains("not a WebAssembly component"), "{reason}");
    fort.good_still_delivers().await;
}

/// Hot-load the five examples into a running `gridlet serve` and wait until
/// all serve; the process's resident memory then.
async fn hot_load_the_examples(dir: &std::path::Path) -> u64 {
    let (child, base, _log) = serve_logging(dir, &[("GRIDLET_ADMIN_TOKEN", "t")]).await;
    let pid = child.id().expect("pid");
    let plugins = dir.join("plugins");
    for name in [
        "failed-run-alert",
        "model-promotion",
        "drift-guard",
        "deployment-notifier",
        "audit-counter",
    ] {
        let staged = plugins.join(format!(".{name}"));
        std::fs::copy(
            root().join("target/plugins").join(format!("{name}.wasm")),
            &staged,
        )
        .expect("copy");
        std::fs::rename(&staged, plugins.join(format!("{name}.wasm"))).expect("rename");
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let list: serde_json::Value = client
            .get(format!("{base}/admin/plugins"))
            .bearer_auth("t")
            .send()
            .await
            .expect("plugins")
            .json()
            .await
            .expect("json");
        let serving = list["plugins"]
            .as_array()
            .map(|p| p.iter().filter(|p| p["state"] == "serving").count())
            .unwrap_or(0);
        if serving == 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not all loaded: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let memory = rss(pid);
    drop(child);
    memory
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiling_in_a_child_keeps_the_host_as_small_as_loading_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("plugins")).expect("plugins");
    std::fs::write(dir.path().join("gridlet.toml"), "").expect("config");
    // First: nothing compiled, every example compiled while serving.
    let compiled = hot_load_the_examples(dir.path()).await;
    // Then: the same, every example from the compile cache.
    for entry in std::fs::read_dir(dir.path().join("plugins")).expect("dir") {
        std::fs::remove_file(entry.expect("entry").path()).expect("rm");
    }
    let cached = hot_load_the_examples(dir.path()).await;
    assert!(
        compiled <= cached + cached / 5,
        "RSS after compiling {} MiB, after loading from the cache {} MiB",
        compiled >> 20,
        cached >> 20
    );
}

/// `/proc/<pid>/stat` of a process, split after its command name (which
/// may hold spaces): [0] is its state, [1] its parent, [11] its user CPU
/// time in clock ticks.
fn stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = &stat[stat.rfind(')')? + 2..];
    Some(fields.split(' ').map(str::to_string).collect())
}

/// The `gridlet compile-plugin` child of process `parent`, if it has one.
fn compile_child(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let parent_of = stat(pid)?.get(1)?.parse::<u32>().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (parent_of == parent && cmdline.windows(14).any(|w| w == b"compile-plugin")).then_some(pid)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_dies_with_its_host() {
    // After a kill -9 of the host, its compile went on for as long as it
    // took (tens of seconds of both cores for a Python plugin), beside the
    // host that replaced it compiling the same file again.
    let dir = tempfile::tempdir().expect("tempdir");
    crate::common::install(dir.path(), "noop", "noop", "", "");
    let (mut server, _base, log) = serve_logging(dir.path(), &[]).await;
    let pid = server.id().expect("serve runs");
    // Hot-loaded: the host is up, the watcher has it compiled.
    install(&dir.path().join("plugins"), "python", "drift-guard", "");
    let started = Instant::now();
    let compile = loop {
        if let Some(child) = compile_child(pid) {
            break child;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no compile started: {}",
            log.lock().expect("log")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Once it is compiling (a second of CPU: it has read the component and
    // has tens more to go), the host dies.
    let ticks = |pid| stat(pid).and_then(|s| s.get(11)?.parse::<u64>().ok());
    let started = Instant::now();
    while ticks(compile).is_some_and(|t| t < 100) {
        assert!(started.elapsed() < Duration::from_secs(60), "not compiling");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.start_kill().expect("kill -9");
    server.wait().await.expect("the host exits");
    // Compiling the Python example takes tens of seconds; the compile ends
    // with its host (a zombie until it is reaped counts as ended).
    let started = Instant::now();
    loop {
        match stat(compile) {
            None => break,
            Some(s) if s[0] == "Z" || s[0] == "X" => break,
            Some(s) => assert!(
                started.elapsed() < Duration::from_secs(5),
                "the compile outlived its host (state {})",
                s[0]
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
