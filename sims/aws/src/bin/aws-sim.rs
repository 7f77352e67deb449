//! Starts the simulated Auto Scaling API and S3 on 127.0.0.1 and prints the settings that
//! point the function app at them (one `NAME=value` per line), then runs until stdin closes
//! or SIGTERM. Used by `scripts/test-lambda` and for local runs.

use burst_aws_sim::{self as sim, asg::AsgSimConfig, s3::S3SimConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let asg_config = AsgSimConfig::default();
    let s3_config = S3SimConfig::default();
    let creds = sim::test_credentials();
    let asg = sim::asg::start(asg_config.clone()).await?;
    let s3 = sim::s3::start(s3_config.clone()).await?;
    println!("BURST_AWS_ASG_ENDPOINT={}", asg.base_url());
    println!("BURST_AWS_ASG_NAME={}", asg_config.group_name);
    println!("BURST_AWS_S3_ENDPOINT={}", s3.base_url());
    println!("BURST_STATE_URL=s3://{}/burst", s3_config.bucket);
    println!("AWS_REGION={}", sim::SIM_REGION);
    println!("AWS_ACCESS_KEY_ID={}", creds.access_key_id);
    println!("AWS_SECRET_ACCESS_KEY={}", creds.secret_access_key);
    println!(
        "AWS_SESSION_TOKEN={}",
        creds.session_token.unwrap_or_default()
    );
    println!("READY");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Report what the run did to the group (the test script checks the write).
    eprintln!("asg desired={} writes={}", asg.desired(), asg.writes());
    eprintln!("s3 keys={:?}", s3.keys());
    Ok(())
}
