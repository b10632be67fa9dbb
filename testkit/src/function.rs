//! The function behind `cargo lambda watch`'s Function URL emulation, on a free
//! loopback port, in one of two runtime modes ([`Runtime`]): built in debug (the
//! tests) or release (the benchmark), its output and the emulator's in one log file,
//! ready once it answered a real request, stopped with every process it started
//! when dropped, and, for outage tests, stopped and started again on the same port
//! ([`Function::stop`], [`Function::resume`]).
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use firehose_testkit::function::{Launch, Runtime};
//! // One process serving up to 1,000 invocations at once, as on Lambda Managed Instances.
//! let function = Launch::new("firehose-lambda", "target/test-logs/x.log")
//!     .runtime(Runtime::Managed)
//!     .concurrency(1000)
//!     .env("TABLE_NAME", "x")
//!     .start()
//!     .await?;
//! println!("{}", function.url("/api/v1/tasks"));
//! # Ok(()) }
//! ```
//!
//! # The emulator's queue
//!
//! `cargo lambda watch` 1.9.2 deadlocks for good once more than
//! [`EMULATOR_QUEUE_LIMIT`] invocations wait for a function to take them: its
//! scheduler holds the lock of its request cache while it waits for room in a queue
//! of 100, and every `GET .../invocation/next` needs that lock to take one out. From
//! then on nothing is answered, not even a plain GET, until the watcher is restarted.
//! An invocation waits there from its request until a runtime worker takes it; under
//! the emulator a stream's invocation is taken once, and leaves the worker free again
//! once its response head is sent. So a test that opens N streams at once either
//! runs at least N invocations at once (managed, [`Launch::concurrency`] >= N) or
//! keeps fewer than [`EMULATOR_QUEUE_LIMIT`] requests waiting for their response
//! head (opens them in waves). See docs/reliability.md, "What the emulator hides".

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
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

/// The environment variable that picks the [`Runtime`] of every launch that does not
/// force one: `managed` (the default when unset or empty) or `classic`. scripts/test
/// runs the suite in both.
pub const RUNTIME_VAR: &str = "FIREHOSE_TEST_RUNTIME";

/// More invocations than this waiting to be taken by the function deadlock
/// `cargo lambda watch` 1.9.2 for good (see the module's documentation).
pub const EMULATOR_QUEUE_LIMIT: usize = 100;

/// How the function's invocations are run. Both go through `cargo lambda watch`,
/// which turns HTTP requests into Function URL invocations and serves the Lambda
/// runtime API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// As on Lambda Managed Instances: ONE function process serves every Function URL
    /// request, started by the launcher with `AWS_LAMBDA_MAX_CONCURRENCY` =
    /// [`Launch::concurrency`] (64 by default), so its runtime polls for that many
    /// invocations at once. The watcher runs with `--only-lambda-apis`: it serves the
    /// runtime API and starts no process of its own (it would force
    /// `AWS_LAMBDA_MAX_CONCURRENCY=1` on them). The binary is built once per test
    /// process, before the first launch.
    ///
    /// The emulator queues invocations by function name: Function URL requests under
    /// `_`, direct invokes (`cargo lambda invoke <binary>`) under the binary's name. A
    /// second process, the same binary with the same settings, serves the latter;
    /// [`Function::instances`] does not count it.
    Managed,
    /// As on classic Lambda: `cargo lambda watch --concurrency N` builds the function
    /// and starts up to N = [`Launch::concurrency`] (8 by default) processes, more
    /// while invocations wait; each takes one invocation at a time (the watcher
    /// forces `AWS_LAMBDA_MAX_CONCURRENCY=1`).
    Classic,
}

impl Runtime {
    /// The mode [`RUNTIME_VAR`] names; `Managed` when it is unset or empty.
    pub fn from_env() -> io::Result<Runtime> {
        match std::env::var(RUNTIME_VAR) {
            Err(std::env::VarError::NotPresent) => Ok(Runtime::Managed),
            Ok(value) => Runtime::parse(&value),
            Err(err) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{RUNTIME_VAR}: {err}"),
            )),
        }
    }

    /// `managed` or `classic` (an empty value: `managed`).
    pub fn parse(value: &str) -> io::Result<Runtime> {
        match value.trim() {
            "" | "managed" => Ok(Runtime::Managed),
            "classic" => Ok(Runtime::Classic),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{RUNTIME_VAR} is {other:?}; expected \"managed\" or \"classic\""),
            )),
        }
    }

    /// How many invocations run at once unless [`Launch::concurrency`] says otherwise.
    /// Classic: 8 processes, since every process is a whole debug binary and 64 of
    /// them overload 2 cores. Managed: 64 workers of one process cost next to nothing.
    pub fn default_concurrency(self) -> usize {
        match self {
            Runtime::Managed => 64,
            Runtime::Classic => 8,
        }
    }

    /// `managed` or `classic`, as [`RUNTIME_VAR`] spells it.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Managed => "managed",
            Runtime::Classic => "classic",
        }
    }
}

/// How to start the function: [`Launch::new`], the options wanted, then
/// [`Launch::start`].
#[derive(Debug, Clone)]
pub struct Launch {
    binary: String,
    log_path: PathBuf,
    release: bool,
    runtime: Option<Runtime>,
    concurrency: Option<usize>,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    ready_path: String,
    ready_status: u16,
    ready_within: Duration,
}

impl Launch {
    /// `binary` of the workspace, in debug, in the runtime mode [`RUNTIME_VAR`] picks
    /// with its default concurrency, the parent's environment, all output (the
    /// emulator's and the function's, stdout and stderr) in `log_path`.
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
            runtime: None,
            concurrency: None,
            env: Vec::new(),
            env_remove: Vec::new(),
            ready_path: "/api/v1/bounties/stream?ready_probe=1".to_owned(),
            ready_status: 400,
            ready_within: Duration::from_secs(180),
        }
    }

    /// A release build (`cargo build --release`, `cargo lambda watch --release`).
    pub fn release(mut self, release: bool) -> Launch {
        self.release = release;
        self
    }

    /// This runtime mode, whatever [`RUNTIME_VAR`] says: for a test or benchmark that
    /// is about one of them.
    pub fn runtime(mut self, runtime: Runtime) -> Launch {
        self.runtime = Some(runtime);
        self
    }

    /// How many invocations run at once: managed, the one process's
    /// `AWS_LAMBDA_MAX_CONCURRENCY`; classic, how many processes the watcher may start
    /// (`--concurrency`). Under the emulator an open stream holds its invocation only
    /// until its response head is sent (see the module's documentation).
    pub fn concurrency(mut self, concurrency: usize) -> Launch {
        self.concurrency = Some(concurrency);
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

    /// The request that tells the function is ready: `GET path` answered `status` by
    /// the function itself (a function that serves no stream cannot be asked for one).
    pub fn ready_probe(mut self, path: impl Into<String>, status: u16) -> Launch {
        self.ready_path = path.into();
        self.ready_status = status;
        self
    }

    /// How long the function may take to be ready (its build included).
    pub fn ready_within(mut self, limit: Duration) -> Launch {
        self.ready_within = limit;
        self
    }

    /// Starts the emulator (and, managed, the function process) on a free loopback
    /// port and waits until the function is ready; on failure, whatever was started
    /// is stopped again.
    pub async fn start(self) -> io::Result<Function> {
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => Runtime::from_env()?,
        };
        let concurrency = self
            .concurrency
            .unwrap_or_else(|| runtime.default_concurrency());
        if concurrency == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the function's concurrency must be at least 1",
            ));
        }
        if let Some(dir) = self.log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = File::create(&self.log_path)?;
        let executable = match runtime {
            Runtime::Managed => Some(build_once(&self.binary, self.release, &log).await?),
            Runtime::Classic => None,
        };
        let port = free_port()?;
        let watcher = self.spawn_watcher(runtime, concurrency, port, &log)?;
        let mut function = Function {
            base: format!("http://127.0.0.1:{port}"),
            log_path: self.log_path.clone(),
            binary: self.binary.clone(),
            runtime,
            concurrency,
            watcher,
            instance: None,
            named: None,
            running: true,
            origin: Box::new(Origin {
                launch: self,
                port,
                executable,
            }),
        };
        function.start_instances(&log).await?;
        let launch = function.origin.launch.clone();
        function.wait_ready(&launch).await?;
        Ok(function)
    }

    /// The environment the launch asked for, on `command`.
    fn apply_env(&self, command: &mut Command) {
        for name in &self.env_remove {
            command.env_remove(name);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
    }

    fn spawn_watcher(
        &self,
        runtime: Runtime,
        concurrency: usize,
        port: u16,
        log: &File,
    ) -> io::Result<Child> {
        let program = cargo_lambda();
        let mut command = Command::new(&program);
        command.args(["lambda", "watch"]);
        match runtime {
            // No --concurrency: the watcher starts nothing, and --release would only
            // name a build it does not make.
            Runtime::Managed => {
                command.arg("--only-lambda-apis");
            }
            Runtime::Classic => {
                if self.release {
                    command.arg("--release");
                }
                command.args(["--concurrency", &concurrency.to_string()]);
            }
        }
        // Never --timeout: its 408 answer to a waiting `invocation/next` makes
        // lambda_runtime panic.
        command
            .args(["--ignore-changes", "--disable-cors", "--quiet"])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .args(["--bin", &self.binary])
            .current_dir(workspace_root());
        // Classic: the processes the watcher starts inherit this environment.
        self.apply_env(&mut command);
        spawn_in_own_group(&mut command, log).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!(
                    "cannot run {} ({err}); scripts/test and scripts/bench install it",
                    program.display()
                ),
            )
        })
    }

    /// A managed-mode function process serving the invocations queued under `name`, as
    /// `cargo lambda watch` would start it (the variables it documents for
    /// `--only-lambda-apis`), but with many workers. `_` is the name the emulator
    /// routes Function URL requests to.
    fn spawn_instance(
        &self,
        executable: &Path,
        name: &str,
        concurrency: usize,
        port: u16,
        log: &File,
    ) -> io::Result<Child> {
        let mut command = Command::new(executable);
        command.current_dir(workspace_root());
        self.apply_env(&mut command);
        // A base URL with the emulator's path prefix: the runtime client keeps the path
        // and appends `/2018-06-01/runtime/...` to it. `_` is also served on the bare
        // prefix, which is what the watcher prints for --only-lambda-apis.
        let runtime_api = match name {
            "_" => format!("http://127.0.0.1:{port}/.rt"),
            name => format!("http://127.0.0.1:{port}/.rt/{name}"),
        };
        command
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
            .env("AWS_LAMBDA_MAX_CONCURRENCY", concurrency.to_string());
        // The line bench/src/settle.rs counts, as the watcher logs it for the
        // processes it starts, so that one log reads the same in both modes.
        log_line(
            log,
            &format!(
                "firehose-testkit: starting lambda function instance ({}, function name {name}, AWS_LAMBDA_MAX_CONCURRENCY={concurrency})",
                executable.display()
            ),
        );
        spawn_in_own_group(&mut command, log).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("cannot run {} ({err})", executable.display()),
            )
        })
    }
}

/// Spawns `command` with no stdin, its output in `log`, in a process group of its own
/// so that stopping the group reaches its children too.
fn spawn_in_own_group(command: &mut Command, log: &File) -> io::Result<Child> {
    std::os::unix::process::CommandExt::process_group(command, 0);
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .spawn()
}

/// Appends one line of the launcher's own to the function's log.
fn log_line(log: &File, line: &str) {
    use std::io::Write;
    let mut log = log;
    let _ = writeln!(log, "{line}");
}

/// The binaries (name, release) already built by this process.
static BUILT: tokio::sync::Mutex<Vec<(String, bool)>> = tokio::sync::Mutex::const_new(Vec::new());

/// Builds `binary` as `cargo lambda watch` would (`cargo build --bin` in the workspace
/// root, the same features, so neither build undoes the other), once per process and
/// profile, its output in `log`; returns the executable.
async fn build_once(binary: &str, release: bool, log: &File) -> io::Result<PathBuf> {
    let executable = target_dir()
        .join(if release { "release" } else { "debug" })
        .join(binary);
    let mut built = BUILT.lock().await;
    let key = (binary.to_owned(), release);
    if built.contains(&key) {
        return Ok(executable);
    }
    // Under `cargo test`, CARGO names the cargo that runs us.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--bin", binary]);
    if release {
        command.arg("--release");
    }
    command
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    // A build takes minutes when cold: off the async workers.
    let status = tokio::task::spawn_blocking(move || command.status())
        .await
        .map_err(io::Error::other)??;
    if !status.success() {
        return Err(io::Error::other(format!(
            "cargo build --bin {binary} failed ({status})"
        )));
    }
    built.push(key);
    Ok(executable)
}

/// Where cargo puts its builds: `CARGO_TARGET_DIR` (relative to the workspace root,
/// where the build runs) or the workspace's `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// The function, running behind `cargo lambda watch`.
pub struct Function {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub log_path: PathBuf,
    binary: String,
    runtime: Runtime,
    concurrency: usize,
    watcher: Child,
    /// Managed: the function process serving Function URL requests.
    instance: Option<Child>,
    /// Managed: the one serving invocations by the binary's name.
    named: Option<Child>,
    /// False once [`Function::stop`] or [`Function::kill_hard`] ended its processes.
    running: bool,
    /// How it was started, to start it again the same way ([`Function::resume`]);
    /// boxed, since a `Function` is moved around by value and this is rarely used.
    origin: Box<Origin>,
}

/// Where and how a [`Function`] was started.
struct Origin {
    launch: Launch,
    port: u16,
    /// Managed: the built binary the launcher starts itself.
    executable: Option<PathBuf>,
}

impl Function {
    /// Managed: once the emulator listens, the function processes (one for Function
    /// URL requests, one for invocations by name); classic: nothing, the watcher
    /// starts them.
    async fn start_instances(&mut self, log: &File) -> io::Result<()> {
        let Some(executable) = self.origin.executable.clone() else {
            return Ok(());
        };
        let (port, concurrency) = (self.origin.port, self.concurrency);
        self.wait_emulator(port, self.origin.launch.ready_within)
            .await?;
        // Each kept as soon as it runs, so that a failure of the next still stops it.
        let instance =
            self.origin
                .launch
                .spawn_instance(&executable, "_", concurrency, port, log)?;
        self.instance = Some(instance);
        let named =
            self.origin
                .launch
                .spawn_instance(&executable, &self.binary, concurrency, port, log)?;
        self.named = Some(named);
        Ok(())
    }

    /// Until the emulator accepts connections: the managed function's runtime gives up
    /// on an emulator that is not listening yet.
    async fn wait_emulator(&mut self, port: u16, limit: Duration) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            self.check_running()?;
            if tokio::time::Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "cargo lambda watch did not listen within {limit:?}; see {}",
                        self.log_path.display()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_ready(&mut self, launch: &Launch) -> io::Result<()> {
        let probe = self.url(&launch.ready_path);
        let deadline = tokio::time::Instant::now() + launch.ready_within;
        // One patient request at a time: in the classic mode every request still
        // waiting makes the watcher start another instance. Meanwhile, a process that
        // exited ends the wait: its request would never be answered.
        while tokio::time::Instant::now() < deadline {
            let answer = probe::get_status(&probe, Duration::from_secs(120));
            tokio::pin!(answer);
            let status = loop {
                tokio::select! {
                    status = &mut answer => break status,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => self.check_running()?,
                }
            };
            if status == Some(launch.ready_status) {
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

    /// An error if the watcher or the managed function process has exited.
    fn check_running(&mut self) -> io::Result<()> {
        let exited = |what: &str, status: std::process::ExitStatus| {
            io::Error::other(format!(
                "{what} exited ({status}) before the function was ready; see {}",
                self.log_path.display()
            ))
        };
        if let Some(status) = self.watcher.try_wait()? {
            return Err(exited("cargo lambda watch", status));
        }
        for instance in self.instance.iter_mut().chain(self.named.iter_mut()) {
            if let Some(status) = instance.try_wait()? {
                return Err(exited("the function process", status));
            }
        }
        Ok(())
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// The mode the function runs in.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// How many invocations run at once (see [`Launch::concurrency`]).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The function's log so far (the emulator's and every instance's output).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The `cargo lambda watch` process: the emulator. Classic, the parent of every
    /// instance; managed, not: the instance is the launcher's child.
    pub fn watcher_pid(&self) -> u32 {
        self.watcher.id()
    }

    /// The function's live instance processes: managed, the one process serving the
    /// Function URL; classic, the descendants of the watcher that run the binary.
    pub fn instances(&self) -> Vec<u32> {
        match &self.instance {
            Some(instance) => Some(instance.id())
                .filter(|pid| process::runs_binary(*pid, &self.binary))
                .into_iter()
                .collect(),
            None => process::descendants(self.watcher.id())
                .into_iter()
                .filter(|pid| process::runs_binary(*pid, &self.binary))
                .collect(),
        }
    }

    /// Kills every process with SIGKILL, as a crashed instance dies: nothing in it
    /// runs (no lease release, no checkpoint).
    pub fn kill_hard(&mut self) {
        for instance in self.instance.iter_mut().chain(self.named.iter_mut()) {
            process::signal_group(instance.id(), "KILL");
            let _ = instance.wait();
        }
        // Classic: the watcher starts its instances in sessions of their own, out of
        // its group's reach; they are found before it dies and takes the tree along.
        let tree = process::descendants(self.watcher.id());
        process::signal_group(self.watcher.id(), "KILL");
        for pid in tree {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.watcher.wait();
        self.running = false;
    }

    /// Stops every process, as a deploy or an outage takes the function away: its
    /// port refuses connections and every open connection is cut. [`Function::resume`]
    /// brings it back on the same port.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        // The function first: a runtime whose emulator has gone retries its
        // `invocation/next` without a pause.
        let children = self
            .instance
            .iter_mut()
            .chain(self.named.iter_mut())
            .chain(std::iter::once(&mut self.watcher));
        for child in children {
            process::stop_tree(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
        self.instance = None;
        self.named = None;
        self.running = false;
    }

    /// Starts a stopped function again, on the same port with the same settings and
    /// the same binary (not rebuilt), its output appended to the same log; returns once
    /// it is ready, as [`Launch::start`] does. A client that knew the old one finds it
    /// at the same address, as it would find a Function URL after an outage.
    pub async fn resume(&mut self) -> io::Result<()> {
        if self.running {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)?;
        log_line(&log, "firehose-testkit: starting the function again");
        self.watcher = self.origin.launch.spawn_watcher(
            self.runtime,
            self.concurrency,
            self.origin.port,
            &log,
        )?;
        self.running = true;
        let started = self.start_instances(&log).await;
        let launch = self.origin.launch.clone();
        let ready = match started {
            Ok(()) => self.wait_ready(&launch).await,
            Err(err) => Err(err),
        };
        if ready.is_err() {
            self.stop();
        }
        ready
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        self.stop();
    }
}
