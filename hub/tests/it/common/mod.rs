//! Test databases for both backends. Every database test runs twice: on a fresh SQLite file and on a
//! fresh Postgres database created for it (from `SOLARHUB_TEST_DATABASE_URL`) and dropped after it.
//! Without that variable the Postgres half says loudly that it was skipped, except under `CI=true`,
//! where it fails.

#![allow(dead_code, unreachable_pub)]

pub mod demo;
pub mod http;
pub mod ingest_site;
pub mod process;
pub mod proxy;
pub mod site;

use std::sync::atomic::{AtomicU32, Ordering};

use solarhub_hub::db::{self, Database, DatabaseUrl, DbConnection, admin};

pub struct TestDb {
    pub url: DatabaseUrl,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
    /// Postgres admin url and database name, to drop it afterwards.
    postgres: Option<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hub.db");
        TestDb {
            url: DatabaseUrl::Sqlite(path),
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A SQLite database file in `dir` (a small file system, say), which the caller keeps.
    pub fn sqlite_in(dir: &std::path::Path) -> TestDb {
        TestDb {
            url: DatabaseUrl::Sqlite(dir.join("hub.db")),
            _dir: None,
            postgres: None,
        }
    }

    /// A fresh, empty Postgres database, or `None` (with a loud note) when no server is configured.
    pub fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("SOLARHUB_TEST_DATABASE_URL") else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "SOLARHUB_TEST_DATABASE_URL is not set under CI=true: the Postgres half of the suite must run"
                );
            }
            eprintln!("SKIPPED (Postgres half): SOLARHUB_TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!(
            "solarhub_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let url = admin::create_postgres_database(&admin_url, &name).expect("create test database");
        Some(TestDb {
            url: DatabaseUrl::Postgres(url),
            _dir: None,
            postgres: Some((admin_url, name)),
        })
    }

    /// Opens the database and applies the migrations.
    pub fn migrated(&self) -> Database {
        let database = Database::open(self.url.clone()).expect("open test database");
        let mut conn = database.get().expect("connection");
        db::run_migrations(&mut conn).expect("migrations");
        database
    }

    pub fn connect(&self) -> DbConnection {
        self.url.connect().expect("connect")
    }

    /// The value to pass as `--database-url` to the binaries.
    pub fn url_arg(&self) -> String {
        match &self.url {
            DatabaseUrl::Postgres(url) => url.clone(),
            DatabaseUrl::Sqlite(path) => path.display().to_string(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres
            && let Err(error) = admin::drop_postgres_database(admin_url, name)
        {
            eprintln!("could not drop test database {name}: {error}");
        }
    }
}

/// Runs `$test(TestDb)` once per backend, as two `#[test]`s named `sqlite` and `postgres` in a module
/// named after the test.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[test]
                fn sqlite() {
                    super::$test($crate::common::TestDb::sqlite());
                }
                #[test]
                fn postgres() {
                    if let Some(db) = $crate::common::TestDb::postgres() {
                        super::$test(db);
                    }
                }
            }
        )*
    };
}

/// `N` different loopback ports that were free a moment ago (asked for together: ports asked
/// for one after another can come back the same, and two servers then fight for it).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// A loopback port that was free a moment ago (for servers that must keep their port across
/// restarts, or as an address nothing listens on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn hub_binary() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_solarhub-hub"))
}

/// Number of migrations in the repository (the Postgres and SQLite directories must match).
pub fn migration_count() -> usize {
    let names = |backend: &str| -> Vec<String> {
        let dir = format!("{}/../migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = names("sqlite");
    assert_eq!(
        sqlite,
        names("postgres"),
        "migrations/sqlite and migrations/postgres must have the same migrations"
    );
    sqlite.len()
}

/// A hub serving gRPC on 127.0.0.1:0 in its own runtime, stopped when dropped.
pub struct RunningHub {
    pub runtime: tokio::runtime::Runtime,
    pub channel: solarhub_proto::tonic::transport::Channel,
    /// `http://127.0.0.1:PORT`, for clients that connect on their own.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the HTTP/JSON routes, when the options serve them.
    pub http_url: Option<String>,
    pub database: Database,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningHub {
    pub fn start(db: &TestDb) -> RunningHub {
        RunningHub::start_with(db, solarhub_hub::server::ServeOptions::default())
    }

    pub fn start_with(db: &TestDb, options: solarhub_hub::server::ServeOptions) -> RunningHub {
        let database = db.migrated();
        let http_url = options
            .http
            .as_ref()
            .map(|listener| format!("http://{}", listener.local_addr().unwrap()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = database.clone();
        let (channel, url) = runtime.block_on(async move {
            let listener = solarhub_hub::grpc::bind("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(solarhub_hub::server::serve_with(
                serving,
                listener,
                options,
                async move {
                    let _ = stopped.await;
                },
            ));
            let url = format!("http://{addr}");
            // Lazy: a hub serving TLS is reached by clients the test builds itself.
            let channel = solarhub_proto::tonic::transport::Channel::from_shared(url.clone())
                .unwrap()
                .connect_lazy();
            (channel, url)
        });
        RunningHub {
            runtime,
            channel,
            url,
            http_url,
            database,
            stop: Some(stop),
        }
    }
}

impl RunningHub {
    /// Stops serving and gives the hub `wait` to finish (its bridge says goodbye, for example).
    pub fn stop_and_wait(&mut self, wait: std::time::Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.runtime
            .block_on(async move { tokio::time::sleep(wait).await });
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The code and the fields named in the details of an error status.
pub fn error_fields(
    status: &solarhub_proto::tonic::Status,
) -> (solarhub_proto::tonic::Code, Vec<String>) {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let mut fields: Vec<String> = details
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    if let Some(precondition) = details.precondition_failure() {
        fields.extend(
            precondition
                .violations
                .iter()
                .map(|v| format!("precondition:{}", v.subject)),
        );
    }
    if let Some(resource) = details.resource_info() {
        fields.push(format!(
            "resource:{}:{}",
            resource.resource_type, resource.resource_name
        ));
    }
    (status.code(), fields)
}

/// Whether the fault suite runs its long forms (`SOLARHUB_FAULTS_LONG=1`): more kills, longer
/// faults. CI runs the short forms.
pub fn long_mode() -> bool {
    std::env::var("SOLARHUB_FAULTS_LONG").is_ok_and(|v| v == "1")
}

/// A small tmpfs mounted for a test (a disk that fills up), unmounted when dropped. `None` where
/// this process may not mount (not root); in CI that is a failure, not a skip.
pub struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    pub fn mount(path: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "cannot mount a tmpfs at {} (the full-disk tests need root)",
                path.display()
            );
            eprintln!("skipped: cannot mount a tmpfs (the full-disk tests need root)");
            return None;
        }
        Some(SmallDisk {
            path: path.to_owned(),
        })
    }

    /// Fills the disk to the last byte; returns the filler to delete when space should return.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        // The last partial block too.
        while file.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}
