//! Runtimes configured by id (`runtime.runtimes[].id` with bundle registries, oasis-facts §15):
//! which bundle a node fetches (the runtime's deployments in the genesis document), from where
//! (the runtime's registries, then `runtime.registries`), and installing it only once it verified.
//!
//! The plan is made by the node's start and by `config check` alike ([`plan`]), so the two refuse
//! the same configs with the same message.

use super::NodeError;
use crate::bundle::{registry, Bundle, RuntimeId};
use crate::config::Config;
use crate::consensus::genesis::{Deployment, Genesis};
use crate::host::HostedRuntime;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// First retry after a failed download; doubled up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
/// Longest wait between attempts (oasis retries every 15 minutes).
pub const RETRY_MAX: Duration = Duration::from_secs(15 * 60);

/// A runtime whose bundle comes from a registry.
#[derive(Clone, Debug)]
pub struct Download {
    /// The runtime.
    pub id: RuntimeId,
    /// The version to host: active at the node's epoch.
    pub active: Deployment,
    /// Future deployments, fetched too so that an upgrade finds its bundle installed.
    pub upcoming: Vec<Deployment>,
    /// Base URLs, in the order tried.
    pub registries: Vec<String>,
}

impl Download {
    /// What the node hosts once the bundle is installed (its name comes from the bundle).
    pub fn hosted(&self, local_config: Option<ciborium::Value>, chain: String) -> HostedRuntime {
        HostedRuntime {
            id: self.id,
            name: String::new(),
            bundle: self.active.bundle_checksum.to_string(),
            version: self.active.version,
            local_config,
            chain_context: chain,
        }
    }
}

/// The downloads `cfg` needs: one per `runtime.runtimes` entry that no bundle in
/// `runtime.paths` provides (`hosted`), chosen from `genesis` at `epoch`. `refused_any`: a
/// bundle of `runtime.paths` was refused (it may have been a runtime's without registries).
pub fn plan(
    cfg: &Config,
    genesis: Option<&Genesis>,
    (hosted, refused_any): (&[HostedRuntime], bool),
    epoch: u64,
) -> Result<Vec<Download>, NodeError> {
    let mut out = Vec::new();
    for (i, r) in cfg.runtime.runtimes.iter().enumerate() {
        if hosted.iter().any(|h| h.id.to_string() == r.id) {
            continue;
        }
        let fail = |reason: String| NodeError::HotLoad {
            key: format!("runtime.runtimes[{i}]"),
            runtime: r.id.clone(),
            reason,
        };
        let registries: Vec<String> = r
            .registries
            .iter()
            .chain(&cfg.runtime.registries)
            .map(|u| u.trim().to_string())
            .collect();
        if registries.is_empty() {
            // A refused bundle may have been this runtime's: it is then reported, not fatal.
            if refused_any {
                continue;
            }
            return Err(NodeError::NoBundle {
                key: format!("runtime.runtimes[{i}]"),
                runtime: r.id.clone(),
            });
        }
        for u in &registries {
            registry::check_url(u).map_err(|e| fail(format!("registry '{u}': {e}")))?;
        }
        let Some(genesis) = genesis else {
            return Err(fail(
                "which bundle to download is named by the runtime's deployments in the genesis \
                 document, and genesis.file is empty (runtime hosting without a network): add the \
                 .orc file to runtime.paths instead"
                    .into(),
            ));
        };
        let id: RuntimeId =
            r.id.parse()
                .map_err(|e: crate::bundle::RuntimeIdError| fail(e.to_string()))?;
        let Some(d) = genesis.registry.runtimes.iter().find(|d| d.id == id) else {
            return Err(fail(
                "the runtime is not registered in the genesis document (registry.runtimes), so no \
                 deployment names its bundle"
                    .into(),
            ));
        };
        let Some(active) = d.active_deployment(epoch).cloned() else {
            return Err(fail(format!(
                "the genesis document lists no deployment of it valid at epoch {epoch} \
                 (registry.runtimes[].deployments: {{version, valid_from, bundle_checksum}}): \
                 nothing names the bundle to download"
            )));
        };
        let upcoming = d
            .wanted_deployments(epoch)
            .into_iter()
            .filter(|w| w.valid_from > epoch)
            .cloned()
            .collect();
        out.push(Download {
            id,
            active,
            upcoming,
            registries,
        });
    }
    Ok(out)
}

/// Where downloads go before they are verified: `runtimes/tmp/bundles`, emptied at start.
pub fn tmp_dir(runtimes_dir: &Path) -> PathBuf {
    runtimes_dir.join("tmp").join("bundles")
}

/// Empties (or creates) the temporary directory.
pub fn reset_tmp_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

use std::os::unix::fs::DirBuilderExt;

/// Where and how bundles are installed.
#[derive(Clone, Debug)]
pub struct Installer {
    /// `runtimes/bundles`.
    pub bundles_dir: PathBuf,
    /// [`tmp_dir`].
    pub tmp_dir: PathBuf,
    /// Time and size limits.
    pub limits: registry::Limits,
}

impl Installer {
    /// Makes sure the bundle of `d` is installed (already exploded and intact, or downloaded,
    /// verified and exploded), trying each registry in turn; returns the bundle's name. The
    /// error names every registry's failure.
    pub async fn install(
        &self,
        id: RuntimeId,
        d: &Deployment,
        registries: &[String],
    ) -> Result<String, String> {
        let hash = d.bundle_checksum.to_string();
        let dir = self.bundles_dir.join(&hash);
        if dir.exists() {
            let (dir2, d2) = (dir.clone(), d.clone());
            let check = tokio::task::spawn_blocking(move || installed(&dir2, id, &d2))
                .await
                .map_err(|e| e.to_string())?;
            match check {
                Ok(name) => return Ok(name),
                Err(e) => {
                    log::warn!(target: "runtime/bundle/manager", runtime_id:% = id, manifest_hash = hash.as_str(), err = e.as_str(); "installed bundle is damaged: downloading it again");
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        let mut errors = Vec::new();
        for base in registries {
            let tmp = match registry::fetch(base, &hash, &self.limits, &self.tmp_dir).await {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("registry {base}: {e}"));
                    continue;
                }
            };
            let (bundles_dir, d2, max) = (
                self.bundles_dir.clone(),
                d.clone(),
                self.limits.max_bundle_size,
            );
            let url = tmp.url.clone();
            let verified = tokio::task::spawn_blocking(move || {
                let r = verify_and_explode(tmp.path(), id, &d2, max, &bundles_dir);
                drop(tmp);
                r
            })
            .await
            .map_err(|e| e.to_string())?;
            match verified {
                Ok(name) => {
                    log::info!(target: "runtime/bundle/manager", runtime_id:% = id, manifest_hash = hash.as_str(), url = url.as_str(); "bundle exploded");
                    return Ok(name);
                }
                Err(e) => errors.push(format!("registry {base}: bundle {url}: {e}")),
            }
        }
        Err(errors.join("; "))
    }
}

/// Checks an exploded bundle against the deployment; returns its name.
fn installed(dir: &Path, id: RuntimeId, d: &Deployment) -> Result<String, String> {
    let m = crate::bundle::read_exploded_manifest(dir).map_err(|e| e.to_string())?;
    matches(&m, id, d)?;
    crate::bundle::verify_exploded(dir, &m).map_err(|e| e.to_string())?;
    Ok(m.name)
}

fn matches(m: &crate::bundle::Manifest, id: RuntimeId, d: &Deployment) -> Result<(), String> {
    let hash = m.hash_hex();
    if hash != d.bundle_checksum.to_string() {
        return Err(format!(
            "its manifest hash is {hash}, not the deployment's bundle_checksum {} (the registry \
             serves a different or altered bundle)",
            d.bundle_checksum
        ));
    }
    if m.id != id {
        return Err(format!("it is a bundle of runtime {}, not {id}", m.id));
    }
    let ronl = m.ronl().map_err(|e| e.to_string())?;
    if ronl.version != d.version {
        return Err(format!(
            "its runtime version is {}, not the deployment's {}",
            ronl.version, d.version
        ));
    }
    Ok(())
}

/// Opens the downloaded file with every check [`Bundle::open`] makes, matches it to the
/// deployment, and explodes it.
fn verify_and_explode(
    path: &Path,
    id: RuntimeId,
    d: &Deployment,
    max: u64,
    bundles_dir: &Path,
) -> Result<String, String> {
    let b = Bundle::open(path, max).map_err(|e| e.to_string())?;
    matches(&b.manifest, id, d)?;
    b.explode(bundles_dir).map_err(|e| e.to_string())?;
    Ok(b.manifest.name)
}

/// Installs the active bundle of `dl`, retrying with backoff until it is installed or `stop`
/// is cancelled (`None`); each failure is logged and passed to `failed`. Upcoming versions
/// are fetched afterwards, once each (a failure is logged; the node retries at its next start).
pub async fn install_with_retry(
    installer: &Installer,
    dl: &Download,
    stop: &tokio_util::sync::CancellationToken,
    mut failed: impl FnMut(&str),
) -> Option<String> {
    let hash = dl.active.bundle_checksum.to_string();
    let mut delay = RETRY_FIRST;
    let name = loop {
        let attempt = installer.install(dl.id, &dl.active, &dl.registries);
        let r = tokio::select! {
            r = attempt => r,
            _ = stop.cancelled() => return None,
        };
        match r {
            Ok(name) => break name,
            Err(e) => {
                log::error!(target: "runtime/bundle/manager", runtime_id:% = dl.id, manifest_hash = hash.as_str(), err = e.as_str(), retry_in:% = humantime::format_duration(delay); "failed to download bundle");
                failed(&format!("failed to download bundle {hash}: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return None,
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    };
    for d in &dl.upcoming {
        let h = d.bundle_checksum.to_string();
        let r = tokio::select! {
            r = installer.install(dl.id, d, &dl.registries) => r,
            _ = stop.cancelled() => return Some(name),
        };
        if let Err(e) = r {
            log::error!(target: "runtime/bundle/manager", runtime_id:% = dl.id, manifest_hash = h.as_str(), version:% = d.version, valid_from = d.valid_from, err = e.as_str(); "failed to download bundle of an upcoming version");
        }
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::genesis::BundleChecksum;
    use axum::body::Body;
    use axum::http::{header, StatusCode};
    use axum::response::Response;
    use axum::routing::get;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const ID: &str = "0000000000000000000000000000000000000000000000000000000000000007";

    /// A bundle of `version` around this host's /bin/true, as bytes with its manifest.
    fn build(t: &Path, version: paratime_sdk::Version) -> (Vec<u8>, crate::bundle::Manifest) {
        let exe = t.join("exe");
        std::fs::write(&exe, crate::bundle::elf::tests::system_executable()).expect("exe");
        let out = t.join(format!("b-{version}.orc"));
        let m = crate::bundle::build(
            &crate::bundle::BuildOptions {
                executable: &exe,
                name: "sample",
                runtime_id: ID.parse().expect("id"),
                version,
            },
            &out,
        )
        .expect("build");
        (std::fs::read(&out).expect("read"), m)
    }

    /// The same entries, the executable with one byte appended: what an attacker who rebuilds
    /// the archive (valid ZIP, valid CRCs) without being able to change the manifest serves.
    fn repackaged(orc: &[u8]) -> Vec<u8> {
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(orc)).expect("zip");
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..a.len() {
            let mut f = a.by_index(i).expect("entry");
            let name = f.name().expect("name").to_string();
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("read");
            if name == crate::bundle::EXECUTABLE_NAME {
                data.push(0);
            }
            out.start_file(name, zip::write::SimpleFileOptions::default())
                .expect("start");
            out.write_all(&data).expect("write");
        }
        out.finish().expect("finish").into_inner()
    }

    struct Server {
        base: String,
        hits: Arc<AtomicUsize>,
    }

    /// A registry on loopback: `/reg/<hash>` names `/<file>` for each hash in `meta`; `files`
    /// are served as given, plus the misbehaving paths `/hang.orc`, `/truncated.orc`,
    /// `/endless.orc`, `/redirect.orc` (to `/good.orc`) and `/loop.orc`.
    async fn serve(meta: Vec<(String, String)>, files: Vec<(String, Vec<u8>)>) -> Server {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", l.local_addr().expect("addr"));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b2, h2) = (base.clone(), hits.clone());
        let files = Arc::new(files);
        let app = axum::Router::new().route(
            "/{*path}",
            get(
                move |axum::extract::Path(path): axum::extract::Path<String>| {
                    let (base, hits, files, meta) =
                        (b2.clone(), h2.clone(), files.clone(), meta.clone());
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let ok = |b: Vec<u8>| Response::new(Body::from(b));
                        if let Some(hash) = path.strip_prefix("reg/") {
                            return match meta.iter().find(|(h, _)| h == hash) {
                                Some((_, file)) => ok(format!("{base}/{file}\n").into_bytes()),
                                None => Response::builder()
                                    .status(StatusCode::NOT_FOUND)
                                    .body(Body::empty())
                                    .expect("404"),
                            };
                        }
                        match path.as_str() {
                            "hang.orc" => std::future::pending().await,
                            "truncated.orc" => {
                                use futures::StreamExt;
                                let half = vec![b'P'; 5000];
                                // Half the body reaches the client, then the server gives up.
                                let s = futures::stream::iter(vec![Ok::<_, std::io::Error>(
                                    axum::body::Bytes::from(half),
                                )])
                                .chain(futures::stream::once(async {
                                    tokio::time::sleep(Duration::from_millis(300)).await;
                                    Err(std::io::Error::other("server stops mid-body"))
                                }));
                                Response::builder()
                                    .header(header::CONTENT_LENGTH, "10000")
                                    .body(Body::from_stream(s))
                                    .expect("truncated")
                            }
                            "endless.orc" => {
                                let s = futures::stream::repeat_with(|| {
                                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![
                                        0u8;
                                        65536
                                    ]))
                                });
                                Response::new(Body::from_stream(s))
                            }
                            "redirect.orc" => Response::builder()
                                .status(StatusCode::FOUND)
                                .header(header::LOCATION, "/good.orc")
                                .body(Body::empty())
                                .expect("302"),
                            "loop.orc" => Response::builder()
                                .status(StatusCode::FOUND)
                                .header(header::LOCATION, "/loop.orc")
                                .body(Body::empty())
                                .expect("302"),
                            p => match files.iter().find(|(n, _)| n == p) {
                                Some((_, b)) => ok(b.clone()),
                                None => Response::builder()
                                    .status(StatusCode::NOT_FOUND)
                                    .body(Body::empty())
                                    .expect("404"),
                            },
                        }
                    }
                },
            ),
        );
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        Server { base, hits }
    }

    struct Case {
        t: tempfile::TempDir,
        good: Vec<u8>,
        deployment: Deployment,
        installer: Installer,
    }

    fn case() -> Case {
        let t = tempfile::tempdir().expect("tempdir");
        let (good, m) = build(t.path(), paratime_sdk::Version::new(1, 2, 3));
        let bundles_dir = t.path().join("bundles");
        let tmp = t.path().join("tmp");
        std::fs::create_dir_all(&bundles_dir).expect("bundles");
        reset_tmp_dir(&tmp).expect("tmp");
        Case {
            deployment: Deployment {
                version: paratime_sdk::Version::new(1, 2, 3),
                valid_from: 0,
                bundle_checksum: BundleChecksum(m.hash()),
            },
            installer: Installer {
                bundles_dir,
                tmp_dir: tmp,
                limits: registry::Limits {
                    timeout: Duration::from_secs(2),
                    max_bundle_size: 20 << 20,
                    tls: None,
                },
            },
            good,
            t,
        }
    }

    impl Case {
        /// Installs through a registry whose metadata names `file`; the error otherwise.
        async fn via(&self, file: &str, files: Vec<(String, Vec<u8>)>) -> Result<String, String> {
            let hash = self.deployment.bundle_checksum.to_string();
            let s = serve(vec![(hash, file.to_string())], files).await;
            self.installer
                .install(
                    ID.parse().expect("id"),
                    &self.deployment,
                    &[format!("{}/reg/", s.base)],
                )
                .await
        }

        fn leftovers(&self) -> Vec<String> {
            std::fs::read_dir(&self.installer.tmp_dir)
                .expect("tmp")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        }
    }

    #[tokio::test]
    async fn a_verified_bundle_is_exploded_under_its_hash_and_nothing_is_left_in_tmp() {
        let c = case();
        let name = c
            .via("good.orc", vec![("good.orc".into(), c.good.clone())])
            .await
            .expect("install");
        assert_eq!(name, "sample");
        let dir = c
            .installer
            .bundles_dir
            .join(c.deployment.bundle_checksum.to_string());
        assert!(dir.join(crate::bundle::EXECUTABLE_NAME).is_file());
        assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
        // Through a redirect, too.
        let c = case();
        c.via("redirect.orc", vec![("good.orc".into(), c.good.clone())])
            .await
            .expect("redirected");
    }

    #[tokio::test]
    async fn a_repackaged_bundle_is_refused_with_the_file_whose_digest_differs() {
        let c = case();
        let bad = repackaged(&c.good);
        let e = c
            .via("good.orc", vec![("good.orc".into(), bad)])
            .await
            .expect_err("tampered");
        assert!(e.contains("invalid digest: 'runtime.elf'"), "{e}");
        assert!(e.contains("/good.orc"), "names the URL: {e}");
        assert!(
            std::fs::read_dir(&c.installer.bundles_dir)
                .expect("dir")
                .next()
                .is_none(),
            "nothing installed"
        );
        assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
    }

    #[tokio::test]
    async fn a_valid_bundle_with_another_hash_is_refused() {
        let c = case();
        let other = tempfile::tempdir().expect("tmp");
        let (b, _) = build(other.path(), paratime_sdk::Version::new(1, 2, 4));
        let e = c
            .via("good.orc", vec![("good.orc".into(), b)])
            .await
            .expect_err("other bundle");
        assert!(e.contains("not the deployment's bundle_checksum"), "{e}");
    }

    #[tokio::test]
    async fn truncated_hanging_endless_missing_and_looping_downloads_fail_named() {
        let c = case();
        let e = c.via("truncated.orc", vec![]).await.expect_err("truncated");
        assert!(e.contains("truncated download"), "{e}");
        let t0 = std::time::Instant::now();
        let e = c.via("hang.orc", vec![]).await.expect_err("hang");
        assert!(e.contains("no complete response within 2s"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        let mut small = case();
        small.installer.limits.max_bundle_size = 1 << 20;
        let e = small.via("endless.orc", vec![]).await.expect_err("endless");
        assert!(
            e.contains("bundle exceeds the size limit of 1048576 bytes (runtime.max_bundle_size)"),
            "{e}"
        );
        let e = c.via("missing.orc", vec![]).await.expect_err("404");
        assert!(e.contains("invalid status code 404"), "{e}");
        let e = c.via("loop.orc", vec![]).await.expect_err("loop");
        assert!(e.contains("more than 10 redirects"), "{e}");
        for c in [&c, &small] {
            assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
        }
    }

    #[tokio::test]
    async fn metadata_that_is_not_one_url_is_refused_and_the_next_registry_is_tried() {
        let c = case();
        let hash = c.deployment.bundle_checksum.to_string();
        // A registry without the hash, one with a long metadata file, then a good one.
        let empty = serve(vec![], vec![]).await;
        let other = BundleChecksum([9; 32]).to_string();
        let long = serve(
            vec![],
            vec![(hash.clone(), vec![b'a'; 3000]), (other, vec![b'a'; 3000])],
        )
        .await;
        let good = serve(
            vec![(hash.clone(), "good.orc".into())],
            vec![("good.orc".into(), c.good.clone())],
        )
        .await;
        let regs = vec![
            format!("{}/reg", empty.base),
            long.base.clone(),
            format!("{}/reg", good.base),
        ];
        let name = c
            .installer
            .install(ID.parse().expect("id"), &c.deployment, &regs)
            .await
            .expect("the third registry serves it");
        assert_eq!(name, "sample");
        // Installed: a second install asks no registry.
        let before = good.hits.load(Ordering::SeqCst);
        c.installer
            .install(ID.parse().expect("id"), &c.deployment, &regs)
            .await
            .expect("installed");
        assert_eq!(good.hits.load(Ordering::SeqCst), before);
        // With the good one gone, every failure is named.
        let e = c
            .installer
            .install(
                ID.parse().expect("id"),
                &Deployment {
                    bundle_checksum: BundleChecksum([9; 32]),
                    ..c.deployment.clone()
                },
                &regs[..2],
            )
            .await
            .expect_err("no registry has it");
        assert!(e.contains("invalid status code 404"), "{e}");
        assert!(
            e.contains("metadata exceeds the size limit of 2048 bytes"),
            "{e}"
        );
        drop(c.t);
    }
}

#[cfg(test)]
mod https_tests {
    use super::*;
    use crate::consensus::genesis::BundleChecksum;
    use std::sync::Arc;

    const ID: &str = "0000000000000000000000000000000000000000000000000000000000000007";

    /// An https registry on loopback with a self-signed certificate for 127.0.0.1: serves the
    /// metadata of `hash` (naming its own `/b.orc`) and the bundle. Returns the base URL and
    /// the certificate (to trust, or not).
    async fn serve_tls(
        hash: String,
        bundle: Vec<u8>,
    ) -> (String, rustls::pki_types::CertificateDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
        let cert = ck.cert.der().clone();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key.into())
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("https://{}", l.local_addr().expect("addr"));
        let meta = format!("{base}/b.orc\n");
        let app = axum::Router::new()
            .route(
                &format!("/{hash}"),
                axum::routing::get(move || {
                    let m = meta.clone();
                    async move { m }
                }),
            )
            .route(
                "/b.orc",
                axum::routing::get(move || {
                    let b = bundle.clone();
                    async move { b }
                }),
            );
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let svc = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                            .await;
                    }
                });
            }
        });
        (base, cert)
    }

    #[tokio::test]
    async fn an_https_registry_is_used_when_its_certificate_is_trusted_and_refused_otherwise() {
        let t = tempfile::tempdir().expect("tempdir");
        let exe = t.path().join("exe");
        std::fs::write(&exe, crate::bundle::elf::tests::system_executable()).expect("exe");
        let out = t.path().join("b.orc");
        let m = crate::bundle::build(
            &crate::bundle::BuildOptions {
                executable: &exe,
                name: "sample",
                runtime_id: ID.parse().expect("id"),
                version: paratime_sdk::Version::new(1, 0, 0),
            },
            &out,
        )
        .expect("build");
        let d = Deployment {
            version: paratime_sdk::Version::new(1, 0, 0),
            valid_from: 0,
            bundle_checksum: BundleChecksum(m.hash()),
        };
        let (base, cert) = serve_tls(m.hash_hex(), std::fs::read(&out).expect("read")).await;
        let installer = |tls: Option<Arc<rustls::ClientConfig>>, dir: &str| {
            let bundles_dir = t.path().join(dir);
            let tmp_dir = t.path().join(format!("{dir}-tmp"));
            std::fs::create_dir_all(&bundles_dir).expect("mkdir");
            reset_tmp_dir(&tmp_dir).expect("tmp");
            Installer {
                bundles_dir,
                tmp_dir,
                limits: registry::Limits {
                    timeout: Duration::from_secs(5),
                    max_bundle_size: 20 << 20,
                    tls,
                },
            }
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let trusted = installer(Some(registry::tls_with(roots)), "trusted");
        let name = trusted
            .install(ID.parse().expect("id"), &d, std::slice::from_ref(&base))
            .await
            .expect("install over https");
        assert_eq!(name, "sample");
        // The host's roots do not know this self-signed certificate.
        let (host, _, _) = registry::host_tls();
        let e = installer(Some(host), "untrusted")
            .install(ID.parse().expect("id"), &d, std::slice::from_ref(&base))
            .await
            .expect_err("untrusted certificate");
        assert!(e.contains("TLS: invalid peer certificate"), "{e}");
        let e = installer(None, "no-roots")
            .install(ID.parse().expect("id"), &d, std::slice::from_ref(&base))
            .await
            .expect_err("no roots");
        assert!(
            e.contains("no CA certificates were loaded for https"),
            "{e}"
        );
    }
}
