//! Everything a test NUT stack keeps on disk, under one directory, and the text of each file:
//! the daemons' configuration (`etc/`), the dummy-ups sequence it plays, the NOTIFYCMD and
//! SHUTDOWNCMD stand-ins (`bin/`), the record of every NOTIFYCMD call and the stack's settings
//! for other processes (`stack.env`). Pure text here; writing and running is in [`super`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The UPS name in `ups.conf` (what tests call `dummy@127.0.0.1:<port>`).
pub const UPS: &str = "dummy";
/// Its description in `ups.conf` (upsd's `LIST UPS` shows it).
pub const UPS_DESC: &str = "hybrid-burst test UPS (dummy-ups)";
/// The upsd account that upsmon and the test's `SET VAR` use.
pub const NUT_USER: &str = "burst-test";

/// The notify types upsmon hands to NOTIFYCMD (NOTIFYFLAG ... EXEC) in every stack: all those
/// NUT 2.8.0 knows that matter to the agent.
pub const NOTIFY_TYPES: &[&str] = &[
    "ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN", "REPLBATT", "NOCOMM",
    "NOPARENT",
];

/// Where each file of a stack lives.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    /// NUT_CONFPATH: ups.conf, upsd.conf, upsd.users, upsmon.conf.
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    /// NUT_STATEPATH: the driver's socket.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
    /// NUT_ALTPIDPATH, and what upsmon sees as /run/nut (its PID file, POWERDOWNFLAG).
    pub fn run(&self) -> PathBuf {
        self.dir.join("run")
    }
    /// One log per daemon, plus `notify-cmd.log` (the test's NOTIFYCMD command) and
    /// `shutdowncmd.log`.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.log_dir().join(name)
    }
    /// The NOTIFYCMD and SHUTDOWNCMD stand-ins.
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }
    pub fn notify_script(&self) -> PathBuf {
        self.bin().join("notify")
    }
    pub fn shutdown_script(&self) -> PathBuf {
        self.bin().join("shutdown")
    }
    /// The file dummy-ups plays (its `port`).
    pub fn sequence(&self) -> PathBuf {
        self.dir.join("ups.seq")
    }
    /// The whole scenario, as given.
    pub fn scenario(&self) -> PathBuf {
        self.dir.join("scenario.seq")
    }
    /// One line per NOTIFYCMD call: `<epoch seconds>\t<NOTIFYTYPE>\t<UPSNAME>`.
    pub fn notify_records(&self) -> PathBuf {
        self.dir.join("notify.tsv")
    }
    /// The stack's settings as `KEY=value` lines, for other processes.
    pub fn stack_env(&self) -> PathBuf {
        self.dir.join("stack.env")
    }
    pub fn upsmon_conf(&self) -> PathBuf {
        self.etc().join("upsmon.conf")
    }
    /// The driver's socket, there once dummy-ups is up.
    pub fn driver_socket(&self) -> PathBuf {
        self.state().join(format!("dummy-ups-{UPS}"))
    }
}

/// How one stack is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// upsd's port on 127.0.0.1.
    pub port: u16,
    /// The password of [`NUT_USER`].
    pub password: String,
    /// The account every daemon runs as (the current user).
    pub run_as: String,
    /// upsd MAXAGE: seconds without driver data before upsd says DATA-STALE.
    pub maxage_s: u32,
    /// upsmon NOCOMMWARNTIME: seconds without contact before NOCOMM.
    pub nocommwarn_s: u32,
    /// upsmon POLLFREQ and POLLFREQALERT.
    pub pollfreq_s: u32,
}

/// `s` as one single-quoted shell word.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value as a double-quoted string of the upsd protocol.
pub fn nut_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', r"\\").replace('"', "\\\""))
}

pub fn ups_conf(layout: &Layout) -> String {
    // dummy-loop: at the end of the file dummy-ups reads it again from the top (a TIMER line
    // pauses it), so a replaced file is picked up within a poll interval.
    format!(
        "# One simulated UPS playing {seq}\n\
         [{UPS}]\n\
         \tdriver = dummy-ups\n\
         \tport = {seq}\n\
         \tmode = dummy-loop\n\
         \tpollinterval = 1\n\
         \tdesc = {desc}\n",
        seq = layout.sequence().display(),
        desc = nut_quote(UPS_DESC),
    )
}

pub fn upsd_conf(layout: &Layout, s: &Settings) -> String {
    format!(
        "LISTEN 127.0.0.1 {port}\nMAXAGE {maxage}\nSTATEPATH {state}\n",
        port = s.port,
        maxage = s.maxage_s,
        state = layout.state().display()
    )
}

pub fn upsd_users(s: &Settings) -> String {
    format!(
        "[{NUT_USER}]\n\tpassword = {}\n\tupsmon primary\n\tactions = SET FSD\n\tinstcmds = ALL\n",
        s.password
    )
}

pub fn upsmon_conf(layout: &Layout, s: &Settings) -> String {
    let mut text =
        String::from("# upsmon for a test stack: it watches, it never shuts anything down\n");
    let lines = [
        format!("RUN_AS_USER {}", s.run_as),
        // Power value 0 and MINSUPPLIES 0: no UPS state ever makes this upsmon shut down.
        format!(
            "MONITOR {UPS}@127.0.0.1:{} 0 {NUT_USER} {} primary",
            s.port, s.password
        ),
        "MINSUPPLIES 0".to_string(),
        format!("POLLFREQ {}", s.pollfreq_s),
        format!("POLLFREQALERT {}", s.pollfreq_s),
        format!("DEADTIME {}", (s.pollfreq_s * 3).max(15)),
        "HOSTSYNC 5".to_string(),
        format!("NOCOMMWARNTIME {}", s.nocommwarn_s),
        "RBWARNTIME 43200".to_string(),
        format!("NOTIFYCMD \"{}\"", layout.notify_script().display()),
        format!("SHUTDOWNCMD \"{}\"", layout.shutdown_script().display()),
        format!("POWERDOWNFLAG {}", layout.run().join("killpower").display()),
    ];
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    for t in NOTIFY_TYPES {
        let _ = writeln!(text, "NOTIFYFLAG {t} SYSLOG+EXEC");
    }
    text
}

/// upsmon's NOTIFYCMD: appends one record line (when it was called, NOTIFYTYPE, UPSNAME),
/// then hands upsmon's message to the test's `command`, if any, as its last argument (the
/// command is a shell command line; its output goes to `log/notify-cmd.log`).
pub fn notify_script(layout: &Layout, command: Option<&str>) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # upsmon's NOTIFYCMD in a test NUT stack: one record line per call, then the test's command.\n",
    );
    let _ = writeln!(
        s,
        "printf '%s\\t%s\\t%s\\n' \"$(date +%s.%N)\" \"${{NOTIFYTYPE:-}}\" \"${{UPSNAME:-}}\" >> {}",
        sh_quote(&layout.notify_records().display().to_string())
    );
    if let Some(command) = command.filter(|c| !c.trim().is_empty()) {
        let _ = writeln!(
            s,
            "{command} \"$1\" >> {} 2>&1",
            sh_quote(&layout.log("notify-cmd.log").display().to_string())
        );
    }
    s.push_str("exit 0\n");
    s
}

/// upsmon's SHUTDOWNCMD: says that it was called, and shuts nothing down.
pub fn shutdown_script(layout: &Layout) -> String {
    format!(
        "#!/bin/sh\n\
         # upsmon's SHUTDOWNCMD in a test NUT stack: recorded, nothing is shut down.\n\
         echo \"$(date +%s.%N) SHUTDOWNCMD\" >> {}\n\
         exit 0\n",
        sh_quote(&layout.log("shutdowncmd.log").display().to_string())
    )
}

/// The state a scenario starts in: its lines before the first `TIMER`, with `ups.status: OL`
/// added when they set no status. Played (looping, so without pauses) while the stack comes
/// up; the whole scenario replaces it once upsmon watches.
pub fn initial_state(scenario: &str) -> String {
    let mut out = String::new();
    let mut has_status = false;
    for line in scenario.lines() {
        let trimmed = line.trim();
        if trimmed.split_whitespace().next() == Some("TIMER") {
            break;
        }
        if trimmed
            .split_once(':')
            .is_some_and(|(k, _)| k.trim() == "ups.status")
        {
            has_status = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !has_status {
        out.push_str("ups.status: OL\n");
    }
    out
}

/// One NOTIFYCMD call as the stack recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyCall {
    /// Epoch seconds when upsmon's hook started.
    pub t: f64,
    /// Seconds since the scenario started.
    pub t_rel: f64,
    pub notifytype: String,
    pub upsname: String,
}

/// The record lines of [`notify_script`], oldest first; `start` (epoch seconds) is when the
/// scenario started. A line cut short by a hook still writing is left out.
pub fn parse_notify_records(text: &str, start: f64) -> Vec<NotifyCall> {
    let mut calls: Vec<NotifyCall> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let t: f64 = f.next()?.parse().ok()?;
            let notifytype = f.next()?.to_string();
            let upsname = f.next()?.to_string();
            Some(NotifyCall {
                t,
                t_rel: t - start,
                notifytype,
                upsname,
            })
        })
        .collect();
    calls.sort_by(|a, b| a.t.total_cmp(&b.t));
    calls
}

/// `stack.env`: what another process needs to drive the stack.
pub fn stack_env(layout: &Layout, s: &Settings, start: f64) -> String {
    format!(
        "PORT={port}\nUPS={UPS}\nUPSNAME={UPS}@127.0.0.1:{port}\nNUT_USER={NUT_USER}\n\
         NUT_PASSWORD={password}\nUPSMON_CONF={conf}\nSCENARIO_START={start:.6}\n",
        port = s.port,
        password = s.password,
        conf = layout.upsmon_conf().display(),
    )
}

/// The `KEY=value` lines of [`stack_env`].
pub fn parse_stack_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            port: 40123,
            password: "pw".into(),
            run_as: "tester".into(),
            maxage_s: 3,
            nocommwarn_s: 4,
            pollfreq_s: 1,
        }
    }

    #[test]
    fn the_initial_state_is_what_comes_before_the_first_timer() {
        let s = "# comment\nups.mfr: x\nups.status: OB\nTIMER 3\nups.status: OL\nTIMER 9\n";
        assert_eq!(initial_state(s), "# comment\nups.mfr: x\nups.status: OB\n");
        // No status before the first pause: on line.
        assert_eq!(
            initial_state("battery.charge: 90\nTIMER 2\nups.status: OB\n"),
            "battery.charge: 90\nups.status: OL\n"
        );
        // A commented-out status does not count; an indented TIMER ends the state too.
        assert_eq!(
            initial_state("#ups.status: OB\n  TIMER 1\nups.status: OB\n"),
            "#ups.status: OB\nups.status: OL\n"
        );
    }

    #[test]
    fn upsmon_watches_without_ever_shutting_down() {
        let layout = Layout::new(Path::new("/t/nut"));
        let conf = upsmon_conf(&layout, &settings());
        let lines: Vec<&str> = conf.lines().collect();
        assert!(lines.contains(&"MONITOR dummy@127.0.0.1:40123 0 burst-test pw primary"));
        assert!(lines.contains(&"MINSUPPLIES 0"));
        assert!(lines.contains(&"SHUTDOWNCMD \"/t/nut/bin/shutdown\""));
        assert!(lines.contains(&"NOTIFYCMD \"/t/nut/bin/notify\""));
        assert!(lines.contains(&"NOCOMMWARNTIME 4"));
        assert!(lines.contains(&"RUN_AS_USER tester"));
        assert!(lines.contains(&"DEADTIME 15"));
        for t in [
            "ONBATT", "ONLINE", "LOWBATT", "COMMBAD", "COMMOK", "NOCOMM", "FSD", "SHUTDOWN",
        ] {
            assert!(
                lines.contains(&format!("NOTIFYFLAG {t} SYSLOG+EXEC").as_str()),
                "{t}"
            );
        }
    }

    #[test]
    fn upsd_and_the_driver_are_confined_to_the_directory_and_loopback() {
        let layout = Layout::new(Path::new("/t/nut"));
        let s = settings();
        assert_eq!(
            upsd_conf(&layout, &s),
            "LISTEN 127.0.0.1 40123\nMAXAGE 3\nSTATEPATH /t/nut/state\n"
        );
        let ups = ups_conf(&layout);
        assert!(ups.contains("[dummy]\n\tdriver = dummy-ups\n\tport = /t/nut/ups.seq\n"));
        assert!(ups.contains("\tdesc = \"hybrid-burst test UPS (dummy-ups)\"\n"));
        let users = upsd_users(&s);
        assert!(users.starts_with("[burst-test]\n\tpassword = pw\n"));
        assert!(users.contains("\tactions = SET FSD\n"));
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(nut_quote(r#"OB "x" \"#), r#""OB \"x\" \\""#);
    }

    #[test]
    fn notify_records_parse_sorted_and_relative_to_the_start() {
        let text = "100.5\tONLINE\tdummy@127.0.0.1:1\n\
                    99.25\tONBATT\tdummy@127.0.0.1:1\n\
                    101.0\tLOWB";
        let calls = parse_notify_records(text, 90.0);
        assert_eq!(calls.len(), 2, "the cut line is left out: {calls:?}");
        assert_eq!(calls[0].notifytype, "ONBATT");
        assert_eq!(calls[0].t_rel, 9.25);
        assert_eq!(calls[1].upsname, "dummy@127.0.0.1:1");
        assert_eq!(calls[1].t, 100.5);
    }

    #[test]
    fn the_notify_script_records_the_call_then_runs_the_command_with_the_message() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.log_dir()).expect("log dir");
        let out = tmp.path().join("got");
        // A command line to which the message is added as the last argument.
        let command = format!(
            "sh -c {} record",
            sh_quote(&format!("echo \"msg=$1\" > {}", out.display()))
        );
        let script = notify_script(&layout, Some(&command));
        let path = tmp.path().join("notify");
        std::fs::write(&path, script).expect("write");
        crate::set_executable(&path);
        let status = std::process::Command::new(&path)
            .arg("UPS dummy on battery")
            .env("NOTIFYTYPE", "ONBATT")
            .env("UPSNAME", "dummy@127.0.0.1:9")
            .status()
            .expect("run");
        assert!(status.success());
        let records = std::fs::read_to_string(layout.notify_records()).expect("records");
        let calls = parse_notify_records(&records, 0.0);
        assert_eq!(calls.len(), 1, "{records}");
        assert_eq!(
            (calls[0].notifytype.as_str(), calls[0].upsname.as_str()),
            ("ONBATT", "dummy@127.0.0.1:9")
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!((now - calls[0].t).abs() < 5.0, "{records}");
        assert_eq!(
            std::fs::read_to_string(&out).expect("command ran"),
            "msg=UPS dummy on battery\n"
        );
        // Without a command it only records.
        assert!(!notify_script(&layout, None).contains("notify-cmd.log"));
    }

    #[test]
    fn stack_env_round_trips() {
        let layout = Layout::new(Path::new("/t/nut"));
        let text = stack_env(&layout, &settings(), 12.5);
        let kv = parse_stack_env(&text);
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PORT"), Some("40123"));
        assert_eq!(get("UPSNAME"), Some("dummy@127.0.0.1:40123"));
        assert_eq!(get("NUT_PASSWORD"), Some("pw"));
        assert_eq!(get("UPSMON_CONF"), Some("/t/nut/etc/upsmon.conf"));
        assert_eq!(get("SCENARIO_START"), Some("12.500000"));
    }
}
