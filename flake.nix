{
  description = "paratime-node: a hardened ParaTime compute node for NixOS";

  # Pinned by flake.lock (nixos-25.11 at 8fd9daa3: rustc 1.91, Cargo.toml's rust-version is 1.90;
  # `nix flake update` moves it).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      # pkgs.paratime-node, built with the nixpkgs it is applied to (needs rustc >= 1.90).
      overlays.default = final: _prev: {
        paratime-node = final.callPackage ./nix/package.nix { };
      };

      # The module, with `services.paratime-node.package` defaulting to this flake's build (from
      # the pinned nixpkgs, whatever the host's). Instances default to that package too.
      nixosModules.default =
        { pkgs, lib, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.paratime-node.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      packages = forAllSystems (
        pkgs:
        let
          paratime-node = pkgs.callPackage ./nix/package.nix { };
        in
        {
          inherit paratime-node;
          default = paratime-node;
          kvstore-bundle = pkgs.callPackage ./nix/kvstore-bundle.nix { inherit paratime-node; };
          image =
            (nixpkgs.lib.nixosSystem {
              modules = [
                self.nixosModules.default
                ./nix/image.nix
                { nixpkgs.hostPlatform = pkgs.stdenv.hostPlatform.system; }
              ];
            }).config.system.build.image;
        }
      );

      checks = forAllSystems (
        pkgs:
        import ./nix/tests {
          inherit pkgs;
          module = ./nix/module.nix;
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          bundle = self.packages.${pkgs.stdenv.hostPlatform.system}.kvstore-bundle;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          packages = [
            pkgs.bubblewrap
            pkgs.cargo-nextest
            pkgs.clippy
            pkgs.rustfmt
            pkgs.nixpkgs-fmt
            pkgs.deadnix
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixpkgs-fmt);
    };
}
