{
  description = "paratime-node: a hardened ParaTime compute node for NixOS";

  # Pinned by flake.lock (nixos-25.05 at ac62194c; `nix flake update` moves it).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

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
