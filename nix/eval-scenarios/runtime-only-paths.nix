# Files named by strings outside the store stay possible: they are written as given, the
# build-time check replaces them by stand-ins and says so, and the module warns (A2).
# expect-warning: genesis.file = /etc/paratime-node/genesis.json is not in the Nix store
# expect-warning: registration.entity = /etc/paratime-node/entity.json is not in the Nix store
# expect-warning: runtime.paths[1] = /var/lib/paratime-bundles/other.orc is not in the Nix store
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    mode = "compute";
    settings.genesis.file = "/etc/paratime-node/genesis.json";
    entity = "/etc/paratime-node/entity.json";
    runtimes = [
      nixEval.flake.packages.x86_64-linux.kvstore-bundle
      "/var/lib/paratime-bundles/other.orc"
    ];
  };
}
