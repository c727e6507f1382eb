//! A private network for agent tests: a network namespace joined to this one by a veth pair,
//! a PostgreSQL cluster listening only on the namespace's own loopback (so nothing outside
//! the namespace can reach it), and `sluice agent` processes running inside it.

#![allow(dead_code)]

use super::{bin, unique, wait_for, Gateway};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Where index locks live: each private network takes the first free index, which names its
/// namespace, its veth pair and its /30 subnet, so parallel tests never collide.
const LOCKS: &str = "/tmp/sluice-private-nets";

/// A namespace with a veth link to the host: the host side is `host_ip`, the inside `ns_ip`.
pub struct PrivateNet {
    pub ns: String,
    veth: String,
    pub host_ip: String,
    pub ns_ip: String,
    /// Held while the network exists.
    _lock: std::fs::File,
}

fn sh(cmd: &mut Command) -> Output {
    cmd.output().expect("command runs")
}

fn ip(args: &[&str]) -> Output {
    sh(Command::new("ip").args(args))
}

impl PrivateNet {
    /// Creates the namespace, or returns `None` after printing `SKIPPED: …` where this
    /// machine forbids namespaces.
    pub fn create() -> Option<PrivateNet> {
        std::fs::create_dir_all(LOCKS).unwrap();
        let (index, lock) = (1..250u32)
            .find_map(|i| {
                let lock = PathBuf::from(LOCKS).join(i.to_string());
                claim(&lock).map(|f| (i, f))
            })
            .expect("a free private network index");
        let ns = format!("slnet{index}");
        let veth = format!("slv{index}");
        // Leftovers of a crashed run with this index.
        ip(&["netns", "del", &ns]);
        ip(&["link", "del", &veth]);
        let added = ip(&["netns", "add", &ns]);
        if !added.status.success() {
            println!(
                "SKIPPED: network namespaces are not available here ({})",
                String::from_utf8_lossy(&added.stderr).trim()
            );
            return None;
        }
        let net = PrivateNet {
            host_ip: format!("10.231.{index}.1"),
            ns_ip: format!("10.231.{index}.2"),
            ns,
            veth,
            _lock: lock,
        };
        let peer = format!("{}p", net.veth);
        for args in [
            vec![
                "link", "add", &net.veth, "type", "veth", "peer", "name", &peer,
            ],
            vec!["link", "set", &peer, "netns", &net.ns],
            vec![
                "addr",
                "add",
                &format!("{}/30", net.host_ip),
                "dev",
                &net.veth,
            ],
            vec!["link", "set", &net.veth, "up"],
        ] {
            let out = ip(&args);
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for args in [
            vec!["addr", "add", &format!("{}/30", net.ns_ip), "dev", &peer],
            vec!["link", "set", &peer, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let out = net.run(Command::new("ip").args(&args));
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(net)
    }

    /// `cmd` to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    fn run(&self, cmd: &Command) -> Output {
        let mut c = self.command(cmd.get_program().to_str().unwrap());
        c.args(cmd.get_args());
        sh(&mut c)
    }

    /// The extra gateway config that makes its API reachable from the namespace.
    pub fn gateway_config(&self) -> String {
        format!("tls:\n  hostnames: [\"{}\"]\n", self.host_ip)
    }
}

/// Takes `lock` if no live process holds it (an advisory file lock: it goes with its
/// holder, crashed or not).
fn claim(lock: &PathBuf) -> Option<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .ok()?;
    f.try_lock().ok().map(|()| f)
}

impl Drop for PrivateNet {
    fn drop(&mut self) {
        // Whatever still runs inside (agents, PostgreSQL) goes with the namespace.
        let pids = ip(&["netns", "pids", &self.ns]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        ip(&["netns", "del", &self.ns]);
        ip(&["link", "del", &self.veth]);
    }
}

/// A PostgreSQL cluster inside a namespace, on its loopback only, with a `marker` table.
pub struct PrivatePg {
    pub port: u16,
    dir: PathBuf,
    ns: String,
}

impl PrivatePg {
    /// initdb + start inside `net`, on a port that is free on this host too (so a direct
    /// connection from outside finds nothing).
    pub fn start(net: &PrivateNet) -> PrivatePg {
        let dir = std::env::temp_dir().join(unique("sluice-private-pg"));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap()
            .success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pgbin = "/usr/lib/postgresql/15/bin";
        let data = dir.join("data");
        let out = sh(Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{pgbin}/initdb"),
                "-A",
                "trust",
                "--no-sync",
                "-D",
            ])
            .arg(&data));
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.display()
        );
        let out = sh(net
            .command("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{pgbin}/pg_ctl"),
                "-w",
                "-l",
            ])
            .arg(dir.join("log"))
            .args(["-o", &opts, "-D"])
            .arg(&data)
            .arg("start"));
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePg {
            port,
            dir,
            ns: net.ns.clone(),
        };
        let out = pg.psql(
            net,
            "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('inside the private network')",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    /// A session inside the namespace holding advisory lock `key` until the returned child
    /// is dropped (its stdin stays open), once the lock is granted.
    pub fn hold_advisory_lock(&self, net: &PrivateNet, key: i64) -> Holder {
        let mut child = net
            .command("psql")
            .args([
                "-X",
                "-q",
                "-tA",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql starts");
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(
            &mut stdin,
            format!("SELECT pg_advisory_lock({key});\n").as_bytes(),
        )
        .unwrap();
        wait_for("the advisory lock", Duration::from_secs(20), || {
            let out = self.psql(
                net,
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
            );
            (String::from_utf8_lossy(&out.stdout).trim() == "1").then_some(())
        });
        Holder {
            child,
            _stdin: stdin,
        }
    }

    /// psql inside the namespace, straight to the cluster.
    pub fn psql(&self, net: &PrivateNet, sql: &str) -> Output {
        sh(net
            .command("psql")
            .args([
                "-X",
                "-q",
                "-tA",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-c", sql]))
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "runuser", "-u", "postgres", "--"])
            .arg("/usr/lib/postgresql/15/bin/pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A psql session holding a lock; it ends when dropped.
pub struct Holder {
    child: Child,
    _stdin: std::process::ChildStdin,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `sluice agent` process inside a namespace, logging to a file.
pub struct AgentProc {
    child: Child,
    pub log: PathBuf,
    pub state: PathBuf,
}

impl AgentProc {
    /// Starts an agent in `net` (or in this namespace) for `gateways`, allowed to dial
    /// `allow`, with `extra` flags (such as `--token`), using the CA of the first gateway.
    pub fn start(
        net: Option<&PrivateNet>,
        gateways: &[&Gateway],
        state: &PathBuf,
        allow: &[String],
        extra: &[&str],
    ) -> AgentProc {
        let log = state.with_extension(format!("{}.log", unique("run")));
        let mut cmd = match net {
            Some(net) => net.command(bin()),
            None => Command::new(bin()),
        };
        cmd.arg("agent").arg("--state-dir").arg(state);
        for g in gateways {
            cmd.args(["--gateway", &format!("https://{}", g.api)]);
        }
        for a in allow {
            cmd.args(["--allow", a]);
        }
        let child = cmd
            .args(extra)
            .env("SLUICE_CA", gateways[0].data().join("tls/ca.pem"))
            .env("SLUICE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("agent starts");
        AgentProc {
            child,
            log,
            state: state.clone(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent reports `n` tunnels up.
    pub fn wait_up(&mut self, n: usize) {
        wait_for("the agent's tunnels", Duration::from_secs(30), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("agent exited ({status}): {}", self.log());
            }
            (self.log().matches("tunnel up").count() >= n).then_some(())
        });
    }

    /// Waits for the agent to exit; its status and log.
    pub fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
        let status = wait_for("the agent to exit", Duration::from_secs(30), || {
            self.child.try_wait().unwrap()
        });
        (status, self.log())
    }

    /// SIGTERM: a clean stop.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// SIGKILL: the process and its sockets vanish at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}
