//! The function under `cargo lambda watch`, on a free loopback port: built in debug
//! (the tests) or release (the benchmark), its output in a log file, ready once it
//! answered a real request, and stopped with its whole process tree when dropped.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, probe, process, workspace_root};

/// The `cargo-lambda` the scripts install (.local/venv/bin), else the one on PATH.
pub fn cargo_lambda() -> PathBuf {
    let local = workspace_root().join(".local/venv/bin/cargo-lambda");
    if local.exists() {
        local
    } else {
        PathBuf::from("cargo-lambda")
    }
}

/// How to start the function: [`Launch::new`], the options wanted, then
/// [`Launch::start`].
#[derive(Debug, Clone)]
pub struct Launch {
    binary: String,
    log_path: PathBuf,
    release: bool,
    concurrency: usize,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    ready_path: String,
    ready_status: u16,
    ready_within: Duration,
}

impl Launch {
    /// `binary` of the workspace, in debug, 8 invocations at once, the parent's
    /// environment, its output (stdout and stderr) in `log_path`.
    ///
    /// Ready once `GET /api/v1/bounties/stream?ready_probe=1` is answered 400: the
    /// function itself refuses the unknown parameter, so the answer proves that an
    /// instance runs, without touching the store. Up to 3 minutes (a first debug
    /// build included).
    pub fn new(binary: &str, log_path: impl Into<PathBuf>) -> Launch {
        Launch {
            binary: binary.to_owned(),
            log_path: log_path.into(),
            release: false,
            concurrency: 8,
            env: Vec::new(),
            env_remove: Vec::new(),
            ready_path: "/api/v1/bounties/stream?ready_probe=1".to_owned(),
            ready_status: 400,
            ready_within: Duration::from_secs(180),
        }
    }

    /// `cargo lambda watch --release`.
    pub fn release(mut self, release: bool) -> Launch {
        self.release = release;
        self
    }

    /// `--concurrency`: how many invocations (so open streams) run at once. The
    /// watcher starts instance processes in proportion to it.
    pub fn concurrency(mut self, concurrency: usize) -> Launch {
        self.concurrency = concurrency;
        self
    }

    /// One more environment variable for the function (later ones win).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Launch {
        self.env.push((name.into(), value.into()));
        self
    }

    /// A variable of this process's environment that the function must not inherit.
    pub fn env_remove(mut self, name: impl Into<String>) -> Launch {
        self.env_remove.push(name.into());
        self
    }

    /// How long the function may take to be ready (its build included).
    pub fn ready_within(mut self, limit: Duration) -> Launch {
        self.ready_within = limit;
        self
    }

    /// Starts `cargo lambda watch` on a free loopback port and waits until the
    /// function is ready; on failure, whatever was started is stopped again.
    pub async fn start(self) -> io::Result<Function> {
        let port = free_port()?;
        if let Some(dir) = self.log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = File::create(&self.log_path)?;
        let program = cargo_lambda();
        let mut command = Command::new(&program);
        command.args(["lambda", "watch"]);
        if self.release {
            command.arg("--release");
        }
        command
            .args(["--ignore-changes", "--disable-cors", "--quiet"])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .args([
                "--concurrency",
                &self.concurrency.to_string(),
                "--bin",
                &self.binary,
            ])
            .current_dir(workspace_root());
        for name in &self.env_remove {
            command.env_remove(name);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        // A process group of its own, so that stopping it reaches the instances too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!(
                        "cannot run {} ({err}); scripts/test and scripts/bench install it",
                        program.display()
                    ),
                )
            })?;
        let function = Function {
            base: format!("http://127.0.0.1:{port}"),
            log_path: self.log_path.clone(),
            binary: self.binary.clone(),
            child,
        };
        function.wait_ready(&self).await?;
        Ok(function)
    }
}

/// A running `cargo lambda watch` serving the function.
pub struct Function {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub log_path: PathBuf,
    binary: String,
    child: Child,
}

impl Function {
    async fn wait_ready(&self, launch: &Launch) -> io::Result<()> {
        let probe = self.url(&launch.ready_path);
        let deadline = tokio::time::Instant::now() + launch.ready_within;
        // One patient request at a time: every request still waiting makes the
        // watcher start another instance.
        while tokio::time::Instant::now() < deadline {
            if probe::get_status(&probe, Duration::from_secs(120)).await
                == Some(launch.ready_status)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the function did not start within {:?}; see {}",
                launch.ready_within,
                self.log_path.display()
            ),
        ))
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// The function's log so far (the watcher's and every instance's output).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The `cargo lambda watch` process: the emulator, parent of every instance.
    pub fn watcher_pid(&self) -> u32 {
        self.child.id()
    }

    /// The function's instance processes (descendants of the watcher running the binary).
    pub fn instances(&self) -> Vec<u32> {
        process::descendants(self.child.id())
            .into_iter()
            .filter(|pid| process::runs_binary(*pid, &self.binary))
            .collect()
    }

    /// Kills the process group with SIGKILL, as a crashed instance dies: nothing in
    /// it runs (no lease release, no checkpoint).
    pub fn kill_hard(&mut self) {
        process::signal_group(self.child.id(), "KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        process::stop_tree(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
