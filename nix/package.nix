# The paratime-node package: the binary (from Cargo.lock), the sample ParaTime, the shipped
# systemd units with their store paths filled in, the derived instance templates, the
# sysusers/tmpfiles snippets and the AppArmor profiles.
{ lib
, rustPlatform
, bubblewrap
,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "paratime-node";
  inherit (cargoToml.workspace.package) version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../sdk
      ../kvstore
      ../tests
      ../systemd
      ../apparmor
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [ "--workspace" ];

  # The tests start bubblewrap sandboxes, boot a container and need root: CI runs them
  # (scripts/test.sh); the NixOS VM tests in nix/tests/ cover the packaged result.
  doCheck = false;

  postInstall = ''
    unitDir=$out/lib/systemd/system
    install -Dm0644 -t $unitDir systemd/*.service systemd/*.socket
    sh systemd/make-templates.sh $unitDir $unitDir
    substituteInPlace $unitDir/*.service \
      --replace-fail /usr/bin/paratime-node $out/bin/paratime-node \
      --replace-fail /usr/bin/bwrap ${lib.getExe bubblewrap}
    install -Dm0644 systemd/sysusers.d/paratime-node.conf $out/lib/sysusers.d/paratime-node.conf
    install -Dm0644 systemd/tmpfiles.d/paratime-node.conf $out/lib/tmpfiles.d/paratime-node.conf
    install -Dm0644 -t $out/etc/apparmor.d apparmor/bwrap apparmor/paratime-node
    substituteInPlace $out/etc/apparmor.d/* \
      --replace-quiet /usr/bin/paratime-node $out/bin/paratime-node \
      --replace-quiet /usr/bin/bwrap ${lib.getExe bubblewrap}
  '';

  meta = {
    description = "Hardened ParaTime compute node running ParaTimes in bubblewrap sandboxes";
    license = lib.licenses.asl20;
    mainProgram = "paratime-node";
    platforms = lib.platforms.linux;
  };
}
