//! The function under `cargo lambda watch --release`, on a free loopback port, and
//! what its instance processes cost (read from /proc).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use crate::client::HttpClient;
use crate::BoxError;

/// The publish key the benchmark's functions accept.
pub const BENCH_KEY: &str = "bench-publish-key";
/// The name of the function's binary (and so of its instance processes).
pub const BINARY: &str = "firehose-lambda";

pub struct Function {
    pub base: String,
    pub log_path: PathBuf,
    child: Child,
}

pub struct FunctionSpec<'a> {
    pub root: &'a Path,
    pub dynamodb_endpoint: &'a str,
    pub table: &'a str,
    pub concurrency: usize,
    pub env: Vec<(&'a str, String)>,
    pub log_dir: &'a Path,
}

pub fn free_port() -> Result<u16, BoxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Function {
    pub async fn start(spec: FunctionSpec<'_>, client: &HttpClient) -> Result<Function, BoxError> {
        let port = free_port()?;
        std::fs::create_dir_all(spec.log_dir)?;
        let log_path = spec.log_dir.join(format!("function-{}.log", spec.table));
        let log = File::create(&log_path)?;
        let mut command = Command::new("cargo");
        command
            .args([
                "lambda",
                "watch",
                "--release",
                "--ignore-changes",
                "--disable-cors",
                "--quiet",
            ])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .args([
                "--concurrency",
                &spec.concurrency.to_string(),
                "--bin",
                BINARY,
            ])
            .current_dir(spec.root)
            .env("TABLE_NAME", spec.table)
            .env("AWS_ENDPOINT_URL_DYNAMODB", spec.dynamodb_endpoint)
            .env(
                "PUBLISH_API_KEY_SHA256",
                firehose::auth::ApiKeys::hash_hex(BENCH_KEY),
            )
            .env("RUST_LOG", "info")
            // Every benchmark stream comes from 127.0.0.1: the per-client cap would
            // refuse the fan-out's 50 streams, which stand for 50 clients.
            .env("MAX_STREAMS_PER_CLIENT", "10000");
        for (name, value) in &spec.env {
            command.env(name, value);
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|err| {
                format!("cannot run `cargo lambda` (scripts/bench installs it): {err}")
            })?;
        let function = Function {
            base: format!("http://127.0.0.1:{port}"),
            log_path,
            child,
        };
        function.wait_ready(client).await?;
        Ok(function)
    }

    /// Ready once the function itself answered (a bad parameter is a 400 from it) and
    /// every instance the watcher started has finished its init.
    async fn wait_ready(&self, client: &HttpClient) -> Result<(), BoxError> {
        let probe = format!("{}/api/v1/bounties/stream?ready_probe=1", self.base);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while tokio::time::Instant::now() < deadline {
            let request = Request::get(&probe).body(Full::<Bytes>::default())?;
            if let Ok(Ok(response)) =
                tokio::time::timeout(Duration::from_secs(120), client.request(request)).await
            {
                let status = response.status();
                let _ = response.into_body().collect().await;
                if status == 400 {
                    return self.wait_idle(0).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "the function did not start; see {}",
            self.log_path.display()
        )
        .into())
    }

    /// Waits until `closed_streams` streams have logged their end and every instance
    /// the watcher started has finished its init, so that a measurement that follows
    /// shares the machine with neither a departing stream nor an instance still
    /// starting (`cargo lambda watch` starts spare instances in the background).
    pub async fn wait_idle(&self, closed_streams: usize) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let started = log.matches("starting lambda function instance").count();
            let initialised = log.matches("firehose starting").count();
            let closed = log.matches("stream closed").count();
            if started > 0 && initialised >= started && closed >= closed_streams {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the function did not settle ({initialised} of {started} instances \
                     initialised, {closed} of {closed_streams} streams closed); see {}",
                    self.log_path.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// The `cargo lambda watch` process: the emulator, parent of every instance.
    pub fn watcher_pid(&self) -> u32 {
        self.child.id()
    }

    /// The function's instance processes (descendants of the watcher running the binary).
    pub fn instances(&self) -> Vec<u32> {
        descendants(self.child.id())
            .into_iter()
            .filter(|pid| is_binary(*pid))
            .collect()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        // cargo lambda watch starts instances in sessions of their own: signal the
        // whole tree, not just the group.
        let tree = descendants(self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        for pid in &tree {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        for _ in 0..50 {
            if tree
                .iter()
                .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in &tree {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fields of /proc/<pid>/stat that matter here.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcStat {
        ppid,
        cpu_ticks: utime + stime,
    })
}

/// The CPU time (utime + stime, clock ticks) of the live processes among `pids`.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| proc_stat(*pid))
        .map(|stat| stat.cpu_ticks)
        .sum()
}

/// A `VmXxx:` figure of /proc/<pid>/status, in kB.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second for /proc CPU times.
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

fn is_binary(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| exe.file_name().map(|name| name == BINARY))
        .unwrap_or(false)
}

/// Every live descendant of `root`.
pub fn descendants(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?.ppid)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            found.push(*pid);
            frontier.push(*pid);
        }
    }
    found
}
