# The paratime-node package: the binary (from Cargo.lock), the sample ParaTime, the shipped
# systemd units with their store paths filled in, the derived instance templates, the
# sysusers/tmpfiles snippets (for other distributions; the NixOS module does not use them) and
# the AppArmor profiles, man pages and shell completions. Needs rustc >= Cargo.toml's rust-version (nixos-25.11 has 1.91).
{ lib
, rustPlatform
, bubblewrap
,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
  bwrap = lib.getExe bubblewrap;
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
      ../state
      ../bft
      ../mkvs
      ../mkvs-tree
      ../kvstore
      ../tests
      ../systemd
      ../apparmor
      ../dist
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [ "--workspace" ];

  # The tests start bubblewrap sandboxes, boot a container and need root: CI runs them
  # (scripts/test.sh); the NixOS VM tests in nix/tests/ cover the packaged result.
  doCheck = false;

  # Every unit names the node's binary; only the sandbox launcher's units name bubblewrap. Each
  # substitution must match (--replace-fail), and no /usr/bin path may remain.
  postInstall = ''
    # Only the node and the sample ParaTime (for the sample bundle) ship: developer tooling
    # (paratime-dev) and the test-only ParaTimes (paratime-hostile, paratime-faulty-kvstore) that
    # the workspace build also produces are removed, and anything else new fails the build.
    rm -f $out/bin/paratime-dev $out/bin/paratime-hostile $out/bin/paratime-faulty-kvstore
    for b in $out/bin/*; do
      case "''${b##*/}" in
        paratime-node | paratime-kvstore) ;;
        *) echo "paratime-node: unexpected binary $b in the package" >&2; exit 1 ;;
      esac
    done
    unitDir=$out/lib/systemd/system
    install -Dm0644 -t $unitDir systemd/*.service systemd/*.socket
    sh systemd/make-templates.sh $unitDir $unitDir
    for unit in $unitDir/*.service; do
      substituteInPlace $unit --replace-fail /usr/bin/paratime-node $out/bin/paratime-node
    done
    substituteInPlace $unitDir/paratime-node-sandbox.service $unitDir/paratime-node-sandbox@.service \
      --replace-fail /usr/bin/bwrap ${bwrap}
    install -Dm0644 systemd/sysusers.d/paratime-node.conf $out/lib/sysusers.d/paratime-node.conf
    install -Dm0644 systemd/tmpfiles.d/paratime-node.conf $out/lib/tmpfiles.d/paratime-node.conf
    install -Dm0644 -t $out/etc/apparmor.d apparmor/bwrap apparmor/paratime-node apparmor/paratime-sandbox
    substituteInPlace $out/etc/apparmor.d/bwrap --replace-fail /usr/bin/bwrap ${bwrap}
    substituteInPlace $out/etc/apparmor.d/paratime-node \
      --replace-fail /usr/bin/paratime-node $out/bin/paratime-node \
      --replace-fail /usr/bin/bwrap ${bwrap}
    # Man pages and completions generated from the command line (paratime-dev gen-docs; CI
    # checks the committed files equal what this build's command line generates).
    install -Dm0644 -t $out/share/man/man1 dist/man/*.1
    install -Dm0644 dist/completions/paratime-node.bash $out/share/bash-completion/completions/paratime-node
    install -Dm0644 dist/completions/_paratime-node $out/share/zsh/site-functions/_paratime-node
    install -Dm0644 dist/completions/paratime-node.fish $out/share/fish/vendor_completions.d/paratime-node.fish
    if grep -rn /usr/bin $unitDir $out/etc/apparmor.d; then
      echo "paratime-node: a unit or profile above still names /usr/bin" >&2
      exit 1
    fi
  '';

  # The one bubblewrap the units and the AppArmor profiles name; the NixOS module uses it too.
  passthru = { inherit bubblewrap; };

  meta = {
    description = "Hardened ParaTime compute node running ParaTimes in bubblewrap sandboxes";
    license = lib.licenses.asl20;
    mainProgram = "paratime-node";
    platforms = lib.platforms.linux;
    maintainers = import ./maintainers.nix;
  };
}
