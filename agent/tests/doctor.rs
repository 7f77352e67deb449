//! `burst-agent doctor` against the checking receiver (the fake function), a fake upsd and a
//! real upsd (the test NUT stack): one line per check with ✓/!/✗, a fix for every problem,
//! exit 0 only without ✗, and nothing sent that the function records.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use burst_test_support::nut::{NutOptions, NutSim, nut_available, scenario};
use support::fake_upsd::FakeUpsd;
use support::{Harness, Run};

/// The report's line for check `name` (`✓ name  text`), its mark, and the `fix:` lines under it.
struct Line {
    mark: char,
    text: String,
    fixes: String,
}

fn line(run: &Run, name: &str) -> Line {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            let mut words = l.split_whitespace();
            words.next().is_some_and(|m| ["✓", "!", "✗"].contains(&m)) && words.next() == Some(name)
        })
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{}\n{}", run.stdout, run.stderr));
    let fixes: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("    fix: "))
        .map(|l| l.trim_start_matches("    fix: "))
        .collect();
    Line {
        mark: lines[at].chars().next().unwrap(),
        text: lines[at].to_string(),
        fixes: fixes.join("\n"),
    }
}

/// The `name` line of a run that failed (exit 1) on it (marked ✗).
fn failed_on(run: &Run, name: &str) -> Line {
    assert_eq!(run.code, 1, "{}", run.stdout);
    let l = line(run, name);
    assert_eq!(l.mark, '✗', "{}", run.stdout);
    l
}

fn has_line(run: &Run, name: &str) -> bool {
    run.stdout
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(name))
}

/// An upsmon.conf as the README has it, with NOTIFYCMD running this build's binary.
fn upsmon_conf(h: &Harness) -> PathBuf {
    let snippet = std::fs::read_to_string(
        burst_test_support::repo_root().join("scripts/onprem/upsmon.conf.snippet"),
    )
    .unwrap()
    .replace("/usr/local/bin/burst-agent", support::AGENT);
    let path = h.tmp.path().join("upsmon.conf");
    std::fs::write(
        &path,
        format!("MONITOR myups@localhost 1 upsmon pass primary\n{snippet}"),
    )
    .unwrap();
    path
}

async fn ups_on_line() -> FakeUpsd {
    FakeUpsd::start(
        "myups",
        &[
            ("ups.status", "OL CHRG"),
            ("battery.charge", "100"),
            ("battery.runtime", "1800"),
        ],
    )
    .await
}

/// A harness with a UPS, a spool and upsmon set up: doctor finds nothing wrong.
async fn working() -> (Harness, FakeUpsd, PathBuf) {
    let mut h = Harness::new().await;
    let upsd = ups_on_line().await;
    h.set("BURST_AGENT_UPS", &upsd.upsname("myups"));
    std::fs::create_dir_all(h.spool_dir()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let key = h.tmp.path().join("ed25519.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let conf = upsmon_conf(&h);
    (h, upsd, conf)
}

async fn doctor(h: &Harness, upsmon: &std::path::Path) -> Run {
    h.run(&["doctor", "--upsmon-conf", upsmon.to_str().unwrap()], &[])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_a_working_path_and_records_nothing() {
    let (h, _upsd, conf) = working().await;
    let run = doctor(&h, &conf).await;
    println!("{}", run.stdout);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for name in [
        "config",
        "key",
        "keys",
        "upsd",
        "upsmon",
        "kube",
        "ups",
        "heartbeat",
        "witness",
        "clock",
        "spool",
        "recovery",
    ] {
        let l = line(&run, name);
        assert_eq!(l.mark, '✓', "{}", run.stdout);
        assert!(l.fixes.is_empty(), "{}", run.stdout);
    }
    assert!(
        line(&run, "config")
            .text
            .contains(h.config.to_str().unwrap())
    );
    assert!(
        line(&run, "key")
            .text
            .contains("-----BEGIN PUBLIC KEY-----\\n"),
        "prints the public key the function must have: {}",
        run.stdout
    );
    assert!(
        line(&run, "keys")
            .text
            .contains("function_key for every route")
    );
    assert!(line(&run, "upsd").text.contains("ups.status \"OL CHRG\""));
    assert!(
        line(&run, "kube")
            .text
            .contains("recovery then uses power (UPS on line) and heartbeats"),
        "{}",
        run.stdout
    );
    for route in ["ups", "heartbeat", "witness"] {
        let l = line(&run, route);
        assert!(
            l.text.contains(&format!("/api/{route} -> 400")),
            "{}",
            l.text
        );
    }
    assert!(
        run.stdout.contains("\ndoctor: 0 problems, "),
        "{}",
        run.stdout
    );
    // Nothing the function would record: three refusals as malformed, nothing accepted.
    assert!(
        h.receiver.accepted().is_empty(),
        "{}",
        h.receiver.describe()
    );
    let refused = h.receiver.refused();
    assert_eq!(refused.len(), 3, "{}", h.receiver.describe());
    assert!(
        refused
            .iter()
            .all(|r| r.status == 400 && r.error == "invalid_payload")
    );
    assert!(
        !run.stdout.contains(support::FUNCTION_KEY),
        "keys are never printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_another_function_is_named_with_its_fix() {
    let (mut h, _upsd, conf) = working().await;
    // The ups function's own key used for every route (a common mix-up).
    h.receiver
        .set_route_key("/api/ups", "key-of-the-ups-function");
    h.set("BURST_AGENT_FUNCTION_KEY", "key-of-the-ups-function");
    h.set("BURST_AGENT_WITNESS_TARGET", "tcp://127.0.0.1:9");
    let run = doctor(&h, &conf).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(line(&run, "ups").mark, '✓', "{}", run.stdout);
    for route in ["heartbeat", "witness"] {
        let l = line(&run, route);
        assert_eq!(l.mark, '✗', "{}", run.stdout);
        assert!(l.text.contains("401 from the Functions host"), "{}", l.text);
        assert!(
            l.fixes.contains("a key for another function")
                && l.fixes.contains("host key")
                && l.fixes.contains(&format!("function_key_{route}")),
            "{}",
            l.fixes
        );
    }
    assert_eq!(
        line(&run, "recovery").mark,
        '✗',
        "no heartbeat gets through"
    );
    assert!(
        !run.stdout.contains("key-of-the-ups-function"),
        "keys are never printed"
    );

    // A key per route fixes it.
    h.set("BURST_AGENT_FUNCTION_KEY_HEARTBEAT", support::FUNCTION_KEY);
    h.set("BURST_AGENT_FUNCTION_KEY_WITNESS", support::FUNCTION_KEY);
    let run = doctor(&h, &conf).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        line(&run, "keys").text.contains(
            "ups <- function_key, heartbeat <- function_key_heartbeat, witness <- function_key_witness"
        ),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_problem_is_named_from_the_functions_answer() {
    let (mut h, _upsd, conf) = working().await;
    // A key pair the function does not know.
    let other = h.tmp.path().join("other.pem");
    let pair = burst_agent::keygen::generate().unwrap();
    std::fs::write(&other, &pair.private_pkcs8_pem).unwrap();
    h.set("BURST_AGENT_ED25519_KEY_FILE", other.to_str().unwrap());
    let run = doctor(&h, &conf).await;
    let l = failed_on(&run, "ups");
    assert!(
        l.text.contains("401 invalid_token from the function"),
        "{}",
        l.text
    );
    let public_one_line = pair.public_spki_pem.trim_end().replace('\n', "\\n");
    assert!(
        l.fixes.contains("BURST_AGENT_ED25519_PUBLIC_KEY") && l.fixes.contains(&public_one_line),
        "{}",
        l.fixes
    );

    // A site the function does not watch.
    let own_key = h.tmp.path().join("ed25519.pem").display().to_string();
    h.set("BURST_AGENT_ED25519_KEY_FILE", &own_key);
    h.set("BURST_AGENT_SITE_ID", "somewhere-else");
    let run = doctor(&h, &conf).await;
    let l = line(&run, "heartbeat");
    assert!(l.text.contains("401 unknown_site"), "{}", run.stdout);
    assert!(
        l.fixes.contains("BURST_SITES") && l.fixes.contains("somewhere-else"),
        "{}",
        l.fixes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_down_names_base_url() {
    let (h, _upsd, conf) = working().await;
    h.receiver.refuse().await;
    let run = doctor(&h, &conf).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let base = h.receiver.base_url();
    for route in ["ups", "heartbeat"] {
        let l = line(&run, route);
        assert_eq!(l.mark, '✗');
        assert!(l.text.contains("no answer"), "{}", l.text);
        assert!(
            l.fixes.contains("nothing listens at base_url") && l.fixes.contains(&base),
            "{}",
            l.fixes
        );
    }
    assert_eq!(
        line(&run, "witness").mark,
        '!',
        "no witness on this host: a warning"
    );
    assert_eq!(line(&run, "clock").mark, '!');
    assert!(line(&run, "clock").text.contains("not checked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_warns_above_30_s_and_fails_above_120_s() {
    let (h, _upsd, conf) = working().await;
    // (the function's clock offset in s, what it is, exit code, mark, the line's text, its fix)
    for (offset, what, code, mark, text, fix) in [
        (
            45,
            "a warning only",
            0,
            '!',
            "s behind the function's clock",
            Some("NTP"),
        ),
        (
            -150,
            "a failure",
            1,
            '✗',
            "s ahead of the function's clock",
            None,
        ),
    ] {
        h.receiver.set_clock_offset(Some(offset));
        let run = doctor(&h, &conf).await;
        assert_eq!(run.code, code, "{what}: {}", run.stdout);
        let l = line(&run, "clock");
        assert_eq!(l.mark, mark, "{}", run.stdout);
        assert!(l.text.contains(text), "{}", l.text);
        if let Some(fix) = fix {
            assert!(l.fixes.contains(fix), "{}", l.fixes);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_config_problems() {
    let (mut h, _upsd, conf) = working().await;
    // No key file.
    h.set("BURST_AGENT_ED25519_KEY_FILE", "/nonexistent/ed25519.pem");
    let run = doctor(&h, &conf).await;
    let l = failed_on(&run, "key");
    assert!(l.text.contains("no such file"), "{}", l.text);
    assert!(
        l.fixes
            .contains("burst-agent keygen --private-key-out /nonexistent/ed25519.pem")
    );
    assert!(
        line(&run, "routes").text.contains("not checked"),
        "{}",
        run.stdout
    );

    // The public key where the private one belongs.
    let public = h.tmp.path().join("ed25519.pub.pem");
    let pair = burst_agent::keygen::generate().unwrap();
    std::fs::write(&public, &pair.public_spki_pem).unwrap();
    h.set("BURST_AGENT_ED25519_KEY_FILE", public.to_str().unwrap());
    let run = doctor(&h, &conf).await;
    let l = line(&run, "key");
    assert_eq!(l.mark, '✗');
    assert!(l.text.contains("is a public key"), "{}", l.text);

    // A broken file: doctor says which file and why, and stops there.
    std::fs::write(&h.config, "site_idd = \"home\"\n").unwrap();
    let run = doctor(&h, &conf).await;
    let l = failed_on(&run, "config");
    assert!(
        l.text.contains(h.config.to_str().unwrap()) && l.text.contains("site_idd"),
        "{}",
        l.text
    );
    assert!(!has_line(&run, "ups"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_hs256_secret_is_a_problem() {
    let mut h = Harness::new_hs256("too-short-secret").await;
    h.set("BURST_AGENT_KUBE_SOURCE", "none");
    let conf = upsmon_conf(&h);
    let run = doctor(&h, &conf).await;
    let l = failed_on(&run, "key");
    assert!(
        l.text
            .contains("16 bytes; the function requires at least 32"),
        "{}",
        l.text
    );
    assert!(
        !run.stdout.contains("too-short-secret"),
        "secrets are never printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsd_problems_and_a_site_that_cannot_see_power() {
    let (mut h, upsd, conf) = working().await;
    // A UPS name upsd does not serve: the names it does serve, and the fix.
    h.set("BURST_AGENT_UPS", &upsd.upsname("otherups"));
    let run = doctor(&h, &conf).await;
    let l = failed_on(&run, "upsd");
    assert!(
        l.text
            .contains("no UPS named \"otherups\" (it serves: myups)"),
        "{}",
        l.text
    );
    assert!(
        l.fixes
            .contains(&format!("ups = \"{}\"", upsd.upsname("myups"))),
        "{}",
        l.fixes
    );

    // No upsd there at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    h.set("BURST_AGENT_UPS", &format!("myups@127.0.0.1:{closed}"));
    let run = doctor(&h, &conf).await;
    let l = line(&run, "upsd");
    assert_eq!(l.mark, '✗');
    assert!(l.text.contains("cannot connect"), "{}", l.text);
    assert!(l.fixes.contains("start upsd"), "{}", l.fixes);

    // No UPS and no cluster view: only heartbeats tell the cloud anything. Said, not failed.
    h.set("BURST_AGENT_UPS", "");
    let run = doctor(&h, &conf).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(line(&run, "upsd").mark, '!');
    let l = line(&run, "recovery");
    assert_eq!(l.mark, '!', "{}", run.stdout);
    assert!(
        l.text
            .contains("nothing tells the cloud that home is back except heartbeats"),
        "{}",
        l.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_against_a_real_upsd() {
    if !nut_available("doctor_against_a_real_upsd") {
        return;
    }
    let (mut h, _fake, conf) = working().await;
    let sim = NutSim::start(
        &h.tmp.path().join("nut"),
        &scenario("hold-ol.seq"),
        NutOptions::lasting(60),
    )
    .await;
    h.set("BURST_AGENT_UPS", &sim.upsname());
    let run = doctor(&h, &conf).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let l = line(&run, "upsd");
    assert!(
        l.text
            .contains(&format!("{} answers: ups.status \"OL\"", sim.upsname())),
        "{}",
        l.text
    );
    assert!(l.text.contains("battery.charge 100 %"), "{}", l.text);

    sim.set_var("ups.status", "OB DISCHRG").await;
    let mut on_battery = false;
    for _ in 0..25 {
        let run = doctor(&h, &conf).await;
        if line(&run, "upsd").text.contains("(on battery now)") {
            on_battery = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(on_battery, "upsd never showed OB");

    h.set("BURST_AGENT_UPS", &format!("nosuch@127.0.0.1:{}", sim.port));
    let run = doctor(&h, &conf).await;
    assert_eq!(run.code, 1);
    let l = line(&run, "upsd");
    assert!(l.text.contains("(it serves: dummy)"), "{}", l.text);
    assert!(
        l.fixes.contains(&format!("ups = \"{}\"", sim.upsname())),
        "{}",
        l.fixes
    );
}
