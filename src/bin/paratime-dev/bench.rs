//! `paratime-dev bench`: host benchmarks printed next to their physical floor.

use paratime_node::bundle::Bundle;
use paratime_node::cli::exec::prepare;
use paratime_node::host::{self, state::RuntimeState};
use paratime_sdk::protocol::{Body, Empty};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// The bundle to provision (e.g. the sample kvstore).
    #[arg(long)]
    bundle: PathBuf,
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// bubblewrap binary.
    #[arg(long, default_value = "/usr/bin/bwrap")]
    sandbox_binary: PathBuf,
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "p50 {:>9.3} ms  p90 {:>9.3} ms  min {:>9.3} ms",
        p(0.5).as_secs_f64() * 1e3,
        p(0.9).as_secs_f64() * 1e3,
        v[0].as_secs_f64() * 1e3
    )
}

async fn bench_async(a: BenchArgs) -> anyhow::Result<()> {
    let n = a.iterations.max(1);
    let (scratch, launcher, rt, bundle) = prepare(&a.bundle, u64::MAX, &a.sandbox_binary, false)?;
    let state = Arc::new(RuntimeState::open(
        &scratch.path().join(paratime_node::host::state::FILE_NAME),
        16 << 20,
    )?);
    let info = launcher.client().info()?;
    if let Some(e) = info.trial_error {
        anyhow::bail!("sandbox unavailable: {e}");
    }
    println!(
        "paratime-node bench: {} iterations, bwrap {}",
        n, info.bwrap_version
    );

    // Floor: bare bwrap running /bin/true with the same namespaces.
    let mut bare = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let s = std::process::Command::new(&a.sandbox_binary)
            .args([
                "--unshare-all",
                "--die-with-parent",
                "--dev",
                "/dev",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--symlink",
                "usr/bin",
                "/bin",
                "/bin/true",
            ])
            .status()?;
        if !s.success() {
            return Err(anyhow::anyhow!("bare bwrap /bin/true failed"));
        }
        bare.push(t.elapsed());
    }
    let mut prov = Vec::new();
    let mut pings = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let p = host::provision(
            &launcher.client(),
            &rt,
            &host::StartOptions::defaults(host::Provisioner::Sandbox),
            state.clone(),
        )
        .await?;
        prov.push(t.elapsed());
        if i == 0 {
            // From a task on the runtime's worker threads, as the node's callers are (not from
            // `block_on`'s thread, which a response would have to wake as well).
            let conn = p.conn.clone();
            pings = tokio::spawn(async move {
                let mut pings = Vec::new();
                for _ in 0..(n * 50) {
                    let t = Instant::now();
                    conn.call(Body::RuntimePingRequest(Empty {}), Duration::from_secs(5))
                        .await?;
                    pings.push(t.elapsed());
                }
                anyhow::Ok(pings)
            })
            .await??;
        }
        p.conn.notify(Body::RuntimeShutdownRequest(Empty {})).await;
    }
    // Floor: one byte each way over a bare socketpair between two threads.
    let (mut x, mut y) = std::os::unix::net::UnixStream::pair()?;
    let echo = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut b = [0u8; 1];
        while y.read_exact(&mut b).is_ok() {
            if y.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut rtts = Vec::new();
    for _ in 0..(n * 50) {
        use std::io::{Read, Write};
        let t = Instant::now();
        x.write_all(&[1])?;
        let mut b = [0u8; 1];
        x.read_exact(&mut b)?;
        rtts.push(t.elapsed());
    }
    drop(x);
    let _ = echo.join();

    let exe_len: usize = bundle.files.values().map(Vec::len).sum();
    let bytes = std::fs::read(&a.bundle)?;
    // Per repetition, reported at the median: the first pass pays page faults for fresh
    // buffers that a steady state does not.
    let reps = (a.iterations as usize).max(10);
    let mut verify = Vec::with_capacity(reps);
    let mut hash = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(Bundle::from_reader(std::io::Cursor::new(&bytes), u64::MAX)?);
        verify.push(t.elapsed());
        let t = Instant::now();
        for f in bundle.files.values() {
            std::hint::black_box(paratime_node::bundle::digest_hex(f));
        }
        hash.push(t.elapsed());
    }
    let median_mbps = |mut v: Vec<Duration>| {
        v.sort();
        exe_len as f64 / v[v.len() / 2].as_secs_f64() / 1e6
    };
    let mbps = median_mbps(verify);
    let hash_mbps = median_mbps(hash);

    println!("provisioning (spawn -> handshake)    {}", stats(prov));
    println!("  floor: bare bwrap /bin/true        {}", stats(bare));
    println!("RHP ping round trip                  {}", stats(pings));
    println!("  floor: bare socketpair round trip  {}", stats(rtts));
    println!("bundle verify (unzip + SHA-512/256)  {mbps:>9.1} MB/s over {exe_len} bytes");
    println!("  SHA-512/256 alone                  {hash_mbps:>9.1} MB/s");
    match std::process::Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            "1",
            "-bytes",
            "16384",
            "-evp",
            "sha512-256",
        ])
        .output()
    {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            if let Some(line) = text
                .lines()
                .rev()
                .find(|l| l.to_ascii_lowercase().contains("sha512"))
            {
                let floor = line
                    .split_whitespace()
                    .last()
                    .and_then(|k| k.trim_end_matches('k').parse::<f64>().ok())
                    .map(|kbps| kbps / 1e3);
                match floor {
                    Some(f) => println!(
                        "  floor: openssl speed -evp sha512-256 {f:>9.1} MB/s (16 KiB blocks): \
                         verify {:.2}x, hash {:.2}x of it",
                        mbps / f,
                        hash_mbps / f
                    ),
                    None => println!("  floor: openssl speed -evp sha512-256: {}", line.trim()),
                }
            }
        }
        _ => println!("  floor: openssl not available"),
    }
    // The ceiling of anything that verifies one signature per item (consensus transactions,
    // executor commitments): Ed25519 verifications on one core, raw and through `Signed::open`
    // (context digest + CBOR decode) on an executor commitment.
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let header = paratime_node::consensus::roothash::CommitmentHeader {
        scheduler_id: paratime_node::consensus::crypto::PublicKey::of(&key),
        header: paratime_node::consensus::roothash::ComputeResultsHeader {
            round: paratime_state::Round(1),
            previous_hash: [1; 32],
            io_root: [2; 32],
            state_root: [3; 32],
        },
        failure: paratime_node::consensus::roothash::Failure::None,
    };
    let signed = paratime_node::consensus::crypto::Signed::sign(&key, "bench", &header);
    let msg = [0u8; 32];
    let sig = ed25519_dalek::Signer::sign(&key, &msg);
    let vk = key.verifying_key();
    let n = 20_000u32;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(vk.verify_strict(std::hint::black_box(&msg), &sig).is_ok());
    }
    let raw = f64::from(n) / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            paratime_sdk::auth::verify_strict(&vk, std::hint::black_box(&msg), &sig).is_ok(),
        );
    }
    let sdk = f64::from(n) / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            signed
                .open::<paratime_node::consensus::roothash::CommitmentHeader>("bench")
                .is_ok(),
        );
    }
    let opened = f64::from(n) / t.elapsed().as_secs_f64();
    println!(
        "Ed25519 verifications, one core      {raw:>9.0} /s (raw verify_strict, 32-byte message)"
    );
    println!(
        "  the same, paratime_sdk::auth::verify_strict {sdk:>9.0} /s (what ParaTimes' transactions use: {:+.1} %)",
        (sdk / raw - 1.0) * 100.0
    );
    println!(
        "  executor commitment Signed::open   {opened:>9.0} /s (context digest + verify + CBOR)"
    );
    Ok(())
}

/// `bench`.
pub(crate) fn bench(a: BenchArgs) -> i32 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(bench_async(a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
