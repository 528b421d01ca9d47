//! `solarhub-collector`: `run` (poll the assigned devices and stream their readings to the hub
//! through the outbox, or print them), `poll` (poll devices given on the command line, readings
//! as JSON lines) and `simulate` (simulated devices of every driver type).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use solarhub_collector::bus::{BusEvent, DeviceSpec, Transport, run_bus};
use solarhub_collector::drivers::register_map::{RegisterMap, builtin_map};
use solarhub_collector::observe::Observer;
use solarhub_collector::simulator::SimDevice;
use solarhub_collector::uplink::assignment::HubLink;
use solarhub_collector::uplink::hub_access::{AccessFiles, HubAccess};
use solarhub_ops::{LogFormat, serve_metrics};

#[derive(Parser)]
#[command(
    name = "solarhub-collector",
    version,
    about = "The solarhub collector: polls devices next to the bus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to standard error: text, or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SOLARHUB_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve simulated devices over Modbus TCP on loopback: one RS485-to-TCP gateway with a powdrive
    /// inverter (unit 1), a senergy inverter (unit 2) and an iammeter meter (unit 3).
    Simulate {
        #[arg(long, default_value = "127.0.0.1:1502")]
        listen: SocketAddr,
        /// IANA timezone of the simulated site: PV follows the sun in its local time.
        #[arg(long, default_value = "Asia/Karachi")]
        timezone: String,
        /// Also serve every other driver type (SunSpec on the next port, a JK BMS gateway on the
        /// one after, a Pytes console on a pseudo-terminal) and write a collector config for all
        /// of them to this file.
        #[arg(long)]
        write_config: Option<PathBuf>,
    },
    /// Run a collector. With --hub and --id (or a config file with `hub:`), register with the hub,
    /// poll the devices it assigns, and stream their readings to it: readings wait in the outbox (a
    /// SQLite file in --outbox-dir) until the hub acknowledges them, so a hub outage or a restart
    /// loses nothing, and when the hub is unreachable at start-up the assignments cached last time
    /// are used. With a config file that lists `adapters:`, run those and write each reading as one
    /// JSON line. A bad entry stops start-up with the file, entry and reason.
    Run {
        #[arg(long, conflicts_with_all = ["hub", "id"], required_unless_present = "hub")]
        config: Option<PathBuf>,
        /// The hub's gRPC address, e.g. http://127.0.0.1:50051. Repeat it (or separate addresses
        /// with commas) for hubs sharing one database: a collector moves to the next address when
        /// one is unreachable.
        #[arg(long, requires = "id", env = "SOLARHUB_HUB", value_delimiter = ',')]
        hub: Vec<String>,
        /// This collector's id, as named in the hub's adapters (`collector_id`).
        #[arg(long, requires = "hub", env = "SOLARHUB_COLLECTOR_ID")]
        id: Option<String>,
        /// Where the outbox lives when streaming to a hub.
        #[arg(long, env = "SOLARHUB_OUTBOX_DIR")]
        outbox_dir: Option<PathBuf>,
        /// A batch is sent at this many readings or this many seconds after its first reading.
        #[arg(long, default_value = "200")]
        batch_readings: usize,
        #[arg(long, default_value = "1")]
        batch_secs: f64,
        /// The longest wait between attempts to reach the hub.
        #[arg(long, default_value = "30")]
        max_backoff_secs: f64,
        /// Registers control commands may write to one device per 24 hours (inverter settings
        /// live in flash, which wears: about 6 writes a day is normal); more are refused.
        #[arg(long, default_value_t = solarhub_collector::control::DEFAULT_WRITE_BUDGET)]
        write_budget: u32,
        /// Where readings go without a hub: `-` for standard output, or a file (appended).
        #[arg(long, default_value = "-")]
        output: String,
        /// With a hub: also append each reading as one JSON line to this file (`-` for standard
        /// output) once it is safe in the outbox.
        #[arg(long)]
        tee: Option<String>,
        /// A file holding this collector's token (`solarhub-hub token create --role collector`);
        /// otherwise the SOLARHUB_TOKEN environment variable, or `hub: {token_file: …}`.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The CA that signed the hub's certificate (PEM), for an https:// hub; otherwise the
        /// system's trusted roots.
        #[arg(long, env = "SOLARHUB_CA_CERT")]
        ca_cert: Option<PathBuf>,
        /// This collector's certificate (PEM), for a hub that requires client certificates.
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// Serve Prometheus metrics at http://ADDR/metrics (polls, dropped values, bus time, the
        /// outbox, the uplink), e.g. 127.0.0.1:9101.
        #[arg(long, env = "SOLARHUB_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Allow --metrics-listen on an address other than loopback (the endpoint takes no token).
        #[arg(long)]
        metrics_public: bool,
        /// Send the token to a hub over plain http:// on an address other than loopback (anyone
        /// on the path can read it and act as this collector). Use https:// instead.
        #[arg(long)]
        insecure: bool,
    },
    /// Poll devices and write each reading as one JSON line.
    Poll {
        /// TYPE@HOST:PORT/UNIT, e.g. powdrive@127.0.0.1:1502/1; repeat for more devices. Devices with
        /// the same HOST:PORT share one bus (one request at a time).
        #[arg(long = "device", required = true)]
        devices: Vec<String>,
        /// A register map file to use instead of the built-in map of TYPE.
        #[arg(long)]
        map: Option<PathBuf>,
        #[arg(long, default_value = "5")]
        interval_secs: f64,
        #[arg(long, default_value = "1")]
        timeout_secs: f64,
        /// Where readings go: `-` for standard output, or a file (appended).
        #[arg(long, default_value = "-")]
        output: String,
        /// Stop after this many readings (0 = run until Ctrl-C).
        #[arg(long, default_value = "0")]
        count: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. }) {
        with_one_malloc_arena();
    }
    solarhub_ops::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc gives every thread that allocates an arena of its own and keeps what each freed: a
/// thousand devices took 25 to 33 MB between runs of one build, and 20.6 MB with one arena
/// (`MALLOC_ARENA_MAX=1`; BENCHMARKS.md, issue 24), at about a tenth more CPU. glibc reads the
/// setting only when a process starts, so a collector started without it (by hand, or from a
/// unit that does not set it) starts itself again with it, once: the same process (`exec`), the
/// same arguments. A value the environment already has is kept; where the binary cannot be
/// started again (it was replaced on disk), the collector goes on as it is.
fn with_one_malloc_arena() {
    use std::os::unix::process::CommandExt as _;
    const SETTING: &str = "MALLOC_ARENA_MAX";
    if std::env::var_os(SETTING).is_some() {
        return;
    }
    let Ok(binary) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(binary);
    if let Some(name) = args.next() {
        again.arg0(name);
    }
    // Returns only when it could not start.
    let error = again.args(args).env(SETTING, "1").exec();
    eprintln!("note: running without {SETTING}=1 ({error}); the collector may use more memory");
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate {
            listen,
            timezone,
            write_config,
        } => simulate(listen, &timezone, write_config).await,
        Command::Run {
            config,
            hub,
            id,
            outbox_dir,
            batch_readings,
            batch_secs,
            max_backoff_secs,
            write_budget,
            output,
            tee,
            token_file,
            ca_cert,
            client_cert,
            client_key,
            metrics_listen,
            metrics_public,
            insecure,
        } => {
            if let Some(listen) = metrics_listen {
                solarhub_ops::check_metrics_listen(listen, metrics_public)
                    .map_err(anyhow::Error::msg)?;
            }
            let observer = Arc::new(Observer::new());
            let _metrics = match metrics_listen {
                Some(listen) => Some(
                    serve_metrics(listen, Arc::new(observer.metrics().registry()))
                        .await
                        .with_context(|| format!("--metrics-listen {listen}"))?,
                ),
                None => None,
            };
            let hub: Vec<String> = hub
                .into_iter()
                .map(|url| url.trim().to_owned())
                .filter(|url| !url.is_empty())
                .collect();
            let link = match (config, hub.is_empty(), id) {
                (_, false, Some(collector_id)) => HubLink {
                    url: hub,
                    collector_id,
                    outbox_dir: None,
                    token_file: None,
                    ca_cert: None,
                    client_cert: None,
                    client_key: None,
                },
                (Some(config), _, _) => {
                    let file = solarhub_collector::uplink::assignment::read_file(&config)?;
                    match file.hub {
                        Some(link) => link,
                        None => return run_config(&config, &output, observer).await,
                    }
                }
                _ => bail!("give --config FILE, or --hub URL and --id ID"),
            };
            let outbox_dir = outbox_dir
                .or(link.outbox_dir)
                .unwrap_or_else(|| PathBuf::from("collector-outbox"));
            // A token: --token-file, else SOLARHUB_TOKEN, else the config's `hub.token_file`.
            let env_token = std::env::var("SOLARHUB_TOKEN")
                .ok()
                .filter(|token| !token.trim().is_empty());
            let (token_file, token) = match (token_file, env_token, link.token_file) {
                (Some(file), _, _) => (Some(file), None),
                (None, Some(token), _) => (None, Some(token)),
                (None, None, file) => (file, None),
            };
            let files = AccessFiles {
                token_file,
                token,
                ca_cert: ca_cert.or(link.ca_cert),
                client_cert: client_cert.or(link.client_cert),
                client_key: client_key.or(link.client_key),
            };
            let tls = link.url[0].starts_with("https://");
            if let Some(other) = link.url.iter().find(|u| u.starts_with("https://") != tls) {
                bail!(
                    "hub addresses {} and {other} differ in TLS: give every address as https:// or every one as http://",
                    link.url[0]
                );
            }
            let access = HubAccess::load(&link.url[0], &files)?;
            if access.has_token()
                && let Some(problem) = link.url.iter().find_map(|url| {
                    solarhub_collector::uplink::hub_access::cleartext_problem(url, insecure)
                })
            {
                bail!(problem);
            }
            let config = solarhub_collector::uplink::UplinkConfig {
                access,
                hubs: link.url,
                collector_id: link.collector_id,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                batch_max_readings: batch_readings.max(1),
                batch_max_wait: Duration::try_from_secs_f64(batch_secs)
                    .context("--batch-secs must be a non-negative number of seconds")?,
                max_backoff: Duration::try_from_secs_f64(max_backoff_secs)
                    .context("--max-backoff-secs must be a non-negative number of seconds")?,
                write_budget_per_day: write_budget,
            };
            std::fs::create_dir_all(&outbox_dir).with_context(|| {
                format!(
                    "cannot create the outbox directory {}",
                    outbox_dir.display()
                )
            })?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("stopping: handing the last readings to the hub");
                let _ = stop.send(true);
            });
            let (tee_tx, writer) = match tee {
                Some(path) => {
                    let mut sink = open_output(&path)?;
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<
                        solarhub_collector::drivers::reading::Reading,
                    >(1024);
                    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                        while let Some(reading) = rx.blocking_recv() {
                            serde_json::to_writer(&mut sink, &reading)?;
                            sink.write_all(b"\n")?;
                            sink.flush()?;
                        }
                        Ok(())
                    });
                    (Some(tx), Some(writer))
                }
                None => (None, None),
            };
            solarhub_collector::app::run_collector(config, &outbox_dir, tee_tx, observer, stopped)
                .await?;
            if let Some(writer) = writer {
                writer.await??;
            }
            Ok(())
        }
        Command::Poll {
            devices,
            map,
            interval_secs,
            timeout_secs,
            output,
            count,
        } => poll(devices, map, interval_secs, timeout_secs, &output, count).await,
    }
}

async fn simulate(
    listen: SocketAddr,
    timezone: &str,
    write_config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let tz: chrono_tz::Tz = timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("{timezone:?} is not an IANA timezone"))?;
    let mut site =
        solarhub_collector::simulator::site::serve_site(listen, tz, write_config.is_some()).await?;
    for (index, line) in site.describe().into_iter().enumerate() {
        match index {
            0 => println!("{line} ({timezone})"),
            _ => println!("{line}"),
        }
    }
    site.servers.spawn(switch_faults(site.devices.clone()));
    if let Some(config_path) = write_config {
        std::fs::write(&config_path, site.collector_yaml(5.0))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        println!("collector config written to {}", config_path.display());
    }
    tokio::select! {
        Some(ended) = site.servers.join_next() => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(anyhow::Error::new(error).context("a simulated device stopped")),
            Err(error) => Err(anyhow::Error::new(error).context("a simulated device failed")),
        },
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Reads fault switches from standard input, one per line:
/// `fault UNIT none|timeout|exception|sentinel REGISTER..|garbage REGISTER..` and `reset UNIT`
/// (counters back to zero).
async fn switch_faults(devices: BTreeMap<u8, Arc<SimDevice>>) -> std::io::Result<()> {
    use solarhub_collector::simulator::Fault;
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let device = words
            .get(1)
            .and_then(|u| u.parse::<u8>().ok())
            .and_then(|u| devices.get(&u));
        let registers = || {
            words
                .iter()
                .skip(3)
                .map(|w| (*w).to_owned())
                .collect::<Vec<_>>()
        };
        let fault = match words.get(2).copied() {
            Some("none") => Some(Fault::None),
            Some("timeout") => Some(Fault::Timeout),
            Some("exception") => Some(Fault::Exception),
            Some("sentinel") => Some(Fault::Sentinel(registers())),
            Some("garbage") => Some(Fault::Garbage(registers())),
            _ => None,
        };
        let understood = match (words.first().copied(), device, fault) {
            (Some("fault"), Some(device), Some(fault)) => {
                device.set_fault(fault);
                true
            }
            (Some("reset"), Some(device), None) => {
                device.reset_counters();
                true
            }
            _ => false,
        };
        if understood {
            println!("ok: {line}");
        } else {
            println!(
                "not understood: {line:?} (fault UNIT none|timeout|exception|sentinel REG..|garbage REG.., reset UNIT)"
            );
        }
    }
    // Standard input closed (run in the background): keep serving.
    std::future::pending::<()>().await;
    Ok(())
}

fn open_output(output: &str) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(if output == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(output)
                .with_context(|| format!("cannot open {output}"))?,
        )
    })
}

async fn run_config(
    config: &std::path::Path,
    output: &str,
    observer: Arc<Observer>,
) -> anyhow::Result<()> {
    let plan = solarhub_collector::uplink::assignment::load_file(config)?;
    let mut sink = open_output(output)?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(256);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runtime = tokio::spawn(solarhub_collector::bus::runtime::run(
        plan,
        sender,
        observer,
        stopped,
        Default::default(),
    ));
    loop {
        let reading = tokio::select! {
            reading = receiver.recv() => reading,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(reading) = reading else { break };
        serde_json::to_writer(&mut sink, &reading)?;
        sink.write_all(b"\n")?;
        sink.flush()?;
    }
    let _ = stop.send(true);
    drop(receiver);
    let _ = runtime.await;
    Ok(())
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async { match terminate.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// `TYPE@HOST:PORT/UNIT`.
fn parse_device(text: &str) -> anyhow::Result<(String, SocketAddr, u8)> {
    let (device_type, rest) = text
        .split_once('@')
        .with_context(|| format!("{text:?}: expected TYPE@HOST:PORT/UNIT"))?;
    let (address, unit) = rest
        .rsplit_once('/')
        .with_context(|| format!("{text:?}: expected TYPE@HOST:PORT/UNIT"))?;
    let address: SocketAddr = address
        .parse()
        .with_context(|| format!("{text:?}: {address:?} is not HOST:PORT"))?;
    let unit: u8 = unit
        .parse()
        .with_context(|| format!("{text:?}: unit {unit:?} is not 0-247"))?;
    if unit > 247 {
        bail!("{text:?}: unit {unit} is not 0-247");
    }
    Ok((device_type.to_owned(), address, unit))
}

async fn poll(
    devices: Vec<String>,
    map_file: Option<PathBuf>,
    interval: f64,
    timeout: f64,
    output: &str,
    count: usize,
) -> anyhow::Result<()> {
    let custom_map = map_file
        .as_deref()
        .map(RegisterMap::load)
        .transpose()?
        .map(Arc::new);
    let mut buses: BTreeMap<SocketAddr, Vec<DeviceSpec>> = BTreeMap::new();
    for text in &devices {
        let (device_type, address, unit) = parse_device(text)?;
        let map = match &custom_map {
            Some(map) => map.clone(),
            None => Arc::new(builtin_map(&device_type)?),
        };
        let device_id = format!("{device_type}-{unit}");
        buses.entry(address).or_default().push(DeviceSpec {
            adapter_id: format!("{device_id}.adapter"),
            device_id,
            unit_id: unit,
            driver: solarhub_collector::bus::Driver::Map(map),
            poll_interval: Duration::from_secs_f64(interval),
            timeout: Duration::from_secs_f64(timeout),
        });
    }
    let mut sink = open_output(output)?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(256);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = buses
        .into_iter()
        .map(|(address, specs)| {
            tokio::spawn(run_bus(
                Transport::Tcp(address),
                specs,
                sender.clone(),
                stopped.clone(),
                None,
            ))
        })
        .collect();
    drop(sender);
    let mut written = 0;
    loop {
        let event = tokio::select! {
            event = receiver.recv() => event,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(event) = event else { break };
        match event {
            BusEvent::Reading(reading) => {
                serde_json::to_writer(&mut sink, &reading)?;
                sink.write_all(b"\n")?;
                sink.flush()?;
                written += 1;
                if count > 0 && written >= count {
                    break;
                }
            }
            other => other.log(),
        }
    }
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}
